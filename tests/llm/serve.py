"""Serve a GGUF chat model over llama.cpp's HTTP server (OpenAI Chat Completions and
Anthropic Messages) on 127.0.0.1, through the PyPI package xllamacpp.

    python tests/llm/serve.py MODEL.gguf PORT
"""

import sys
import time

import xllamacpp

params = xllamacpp.CommonParams()
params.model.path = sys.argv[1]
params.port = int(sys.argv[2])
params.n_ctx = 16384  # 4 slots of 4096 tokens
params.n_parallel = 4
params.use_jinja = True
params.cpuparams.n_threads = 2
server = xllamacpp.Server(params)
print("listening", server.listening_address, flush=True)
while True:
    time.sleep(3600)
