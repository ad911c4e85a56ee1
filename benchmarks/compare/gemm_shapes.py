"""PyTorch's CPU matrix product on the shapes of a `small` training step, as
`cargo run --release -p physworld-model --example gemm_shapes` times Candle's
(BENCHMARKS.md, "Matrix products"): best of 5 x 10 products, GFLOP/s.

    python benchmarks/compare/gemm_shapes.py --threads 2
"""

import argparse
import time

import torch

SHAPES = [(3072, 192, 576, "fwd qkv"), (3072, 192, 768, "fwd fc1"), (3072, 768, 192, "fwd fc2"),
          (3072, 576, 192, "bwd dx"), (576, 3072, 192, "bwd dW qkv"), (192, 3072, 768, "bwd dW fc2")]


def best(f):
    for _ in range(3):
        f()
    out = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            f()
        out = min(out, (time.perf_counter() - t) / 10)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(ap.parse_args().threads)
    for m, k, n, what in SHAPES:
        a, at, b = torch.randn(m, k), torch.randn(k, m), torch.randn(n, k)
        plain, transposed = best(lambda: a @ b.t()), best(lambda: at.t() @ b.t())
        gf = 2 * m * k * n / 1e9
        print(f"{what:11} {m}x{k}x{n}: a@bT {plain * 1e3:.3f} ms ({gf / plain:.1f} GFLOP/s), "
              f"aT-view@bT {transposed * 1e3:.3f} ms ({gf / transposed:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
