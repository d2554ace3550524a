"""Training throughput (images/s) on CPU: simple_cnn and resnet20, NCHW vs channels_last.

Measures full optimizer steps (forward + backward + Adam) on synthetic 32x32x3 batches,
side by side in one run so the ratios are meaningful on a noisy machine.
Usage: python benchmarks/bench_train.py [--steps N] [--batch B]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from lsx.models import build_model


def throughput(name: str, batch: int, steps: int, channels_last: bool, size: int = 32) -> float:
    torch.manual_seed(0)
    model = build_model(name, 3, size, 10)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 32x32x3")
    print(f"{'model':<12}{'NCHW img/s':>12}{'channels_last img/s':>22}{'ratio':>8}")
    for name in ("simple_cnn", "resnet20"):
        steps = args.steps if name == "simple_cnn" else max(3, args.steps // 3)
        a = throughput(name, args.batch, steps, False)
        b = throughput(name, args.batch, steps, True)
        print(f"{name:<12}{a:>12.0f}{b:>22.0f}{b / a:>8.2f}")


if __name__ == "__main__":
    main()
