"""Points per second on a GPU: the per-point loop vs several points per vmapped forward pass.

Same model, data, directions and grid; the contenders are interleaved round by round with the order
rotated (``timing.py``): ``Evaluator(points_per_pass=1)`` (the loop: load a point, forward the subset)
vs ``points_per_pass=P`` (``lsx.landscape.engine.batched``: P parameter sets stacked, one vmapped pass). Both
use the same chunk of the subset per pass. Every batched result is checked against the loop's values.
Without CUDA it says "no CUDA, CPU only" and runs a small version on the CPU (the check still counts).
Usage: ``python benchmarks/bench_gpu.py [--repeats 5] [--per-pass 4 16 64]``.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from bench_surface import digits_data, synthetic_data
from timing import fmt_ratio, fmt_time, header, interleave, print_block, set_threads, table

from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.grids import grid2d
from lsx.landscape.surfaces.directions import random_direction
from lsx.models import build_model


def run_case(name, model_name, data, side, per_pass, chunk, repeats, warmup, device):
    x, y = data
    torch.manual_seed(0)
    model = build_model(model_name, x.shape[1], tuple(x.shape[2:]), int(y.max()) + 1).eval()
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, s, "filter", "biasbn") for s in (1, 2)])
    grid = grid2d((-1, 1, side), (-1, 1, side))
    th, dv = theta0.to(device), dirs.to(device)
    evs = {"loop (1 point/pass)": Evaluator(copy.deepcopy(model).to(device), (x, y), chunk_size=chunk, points_per_pass=1)}
    for p in per_pass:
        evs[f"{p} points/pass"] = Evaluator(copy.deepcopy(model).to(device), (x, y), chunk_size=chunk, points_per_pass=p)

    def runner(ev):
        def run():
            out = ev.evaluate(th, dv, grid)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        return run

    t = interleave({n: runner(ev) for n, ev in evs.items()}, repeats, warmup)
    ref = t.results["loop (1 point/pass)"]
    rows, checks = [], []
    for n in evs:
        d = float(np.max(np.abs(t.results[n]["train_loss"] - ref["train_loss"]) / np.maximum(np.abs(ref["train_loss"]), 1e-6)))
        acc_diff = float(np.max(np.abs(t.results[n]["train_acc"] - ref["train_acc"])))
        rows.append(
            f"| {name} | {n} | {grid.num_points} x {len(x)} | {fmt_time(t, n)} | "
            f"{grid.num_points / t.median(n):.1f} | {fmt_ratio(t, n, 'loop (1 point/pass)')} | {d:.1e} | {acc_diff:.1e} |"
        )
        checks.append(d < 1e-4)
    return rows, all(checks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--per-pass", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
        cases = [
            ("simple_cnn / digits 8x8", "simple_cnn", digits_data(1797), 11, 1797),
            ("resnet20 / synthetic 32x32x3", "resnet20", synthetic_data(1024), 7, 1024),
        ]
        per_pass, where = args.per_pass, f"CUDA: {torch.cuda.get_device_name()}"
    else:
        cases = [
            ("simple_cnn / digits 8x8", "simple_cnn", digits_data(300), 4, 300),
            ("resnet20 / synthetic 16x16x3", "resnet20", synthetic_data(32)[0][:, :, :16, :16], 2, 32),
        ]
        cases[1] = (cases[1][0], cases[1][1], (cases[1][2], synthetic_data(32)[1]), cases[1][3], cases[1][4])
        per_pass, where = [p for p in args.per_pass if p <= 4] or [4], "no CUDA, CPU only (small sizes; checks values, not speed)"
        args.repeats, args.warmup = min(args.repeats, 2), 0
    title = header(f"bench_gpu ({where})", args.repeats, args.warmup)
    rows, ok = [], True
    for name, model_name, data, side, chunk in cases:
        r, good = run_case(name, model_name, data, side, per_pass, chunk, args.repeats, args.warmup, device)
        rows += r
        ok &= good
    lines = [
        *table(
            [
                "case",
                "evaluation",
                "points x images",
                "median s (min–max)",
                "points/s",
                "time ÷ loop",
                "max rel. Δloss vs loop",
                "max Δacc",
            ],
            rows,
        ),
        "",
        f"- batched values agree with the loop (rel. Δloss < 1e-4): {ok}",
    ]
    print_block("gpu", title, lines)
    if not ok:
        raise SystemExit("batched values disagree with the per-point loop")


if __name__ == "__main__":
    main()
