"""Where PyTorch's training step of the reference model spends its time: torch.profiler
over 5 steps (after 3 warm-up steps) of the same step `jepa_reference.py --time` times,
ops sorted by their own CPU time (BENCHMARKS.md, "Where a step's time goes").

    cargo run --release -p physworld-model --example export_reference -- /tmp/ref-small small 16
    python benchmarks/compare/profile_reference.py /tmp/ref-small --threads 2
"""

import argparse
import json
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jepa_reference as jr  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder written by the export_reference example")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    conf = json.load(open(f"{a.dir}/config.json"))
    cfg, lcfg, tf = conf["model"], conf["loss"], conf["future_frames"]
    flat = jr.load_safetensors(f"{a.dir}/model.safetensors")
    batch = jr.load_safetensors(f"{a.dir}/batch.safetensors")
    _, step, _ = jr.torch_training(flat, cfg, lcfg, batch, tf)

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
