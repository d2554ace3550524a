"""Training throughput (images/s) on CPU: simple_cnn and resnet20, NCHW vs channels_last, interleaved.

Full optimizer steps (forward + backward + Adam) on synthetic 32x32x3 batches; the two memory formats
of a model run in alternating rounds with the order rotated (``timing.py``), so ratios are per round.
Usage: ``python benchmarks/bench_train.py [--steps N] [--batch B] [--repeats R] [--threads T]``.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from timing import block, fmt_ratio, fmt_time, header, interleave, load_average, set_threads

from lsx.models import build_model


def stepper(name: str, batch: int, steps: int, channels_last: bool, size: int = 32):
    """A function running ``steps`` Adam steps of a fixed model/batch (state persists across calls)."""
    torch.manual_seed(0)
    model = build_model(name, 3, size, 10)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def run() -> None:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    title = header("bench_train", args.repeats, args.warmup)
    rows = []
    for name in ("simple_cnn", "resnet20"):
        steps = args.steps if name == "simple_cnn" else max(3, args.steps // 3)
        t = interleave({"NCHW": stepper(name, args.batch, steps, False),
                        "channels_last": stepper(name, args.batch, steps, True)}, args.repeats, args.warmup)
        imgs = args.batch * steps
        rows.append(f"| {name} | {imgs / t.median('NCHW'):.0f} | {imgs / t.median('channels_last'):.0f} | "
                    f"{fmt_ratio(t, 'NCHW', 'channels_last')} | {fmt_time(t, 'channels_last')} |")
    lines = [title + f"; after: {load_average()}", f"Adam steps on 32x32x3 batches of {args.batch}.", "",
             "| model | NCHW img/s | channels_last img/s | NCHW time ÷ channels_last | channels_last s per round |",
             "|---|---|---|---|---|", *rows]
    print(block("train", lines))


if __name__ == "__main__":
    main()
