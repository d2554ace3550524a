"""Surface-evaluation benchmark: lsx engine vs a per-point baseline vs the forward-pass floor.

Side by side in one run — same model weights, same data subset, same 2D grid of points:
- baseline: the original loss-landscape code's pattern per point — copy θ0 + Σ c·d into a new state
  dict, ``load_state_dict`` it, and run a ``DataLoader`` pass (batch 128, NCHW) computing loss and accuracy;
- engine:   ``lsx.landscape.Evaluator.evaluate`` (in-place flat update, inference_mode, channels_last,
            chunked tensors, float64 point arithmetic, θ0 restore);
- floor:    the same number of forward passes through the engine's own forward module (the fused
            ``InferenceGraph`` when the model has one), over the same chunks, with no parameter changes —
            engine/floor is the engine's whole per-point overhead;
- plain:    the same floor through the unfused channels_last model, to show what the graph rewrite buys.
Cases: simple_cnn on sklearn's 8x8 digits and resnet20 on synthetic 32x32x3 images.

The baselines run first, before the engine tunes the process allocator (``lsx.landscape.alloc``), as the
original code would run; engine and floor then alternate ``--repeats`` times; the fastest run of each
method counts (other processes share this CPU; ``--threads 1`` is steadier on a busy machine). Usage: ``python benchmarks/bench_surface.py [--repeats 3]``.
Targets: baseline/engine >= 3x, engine/floor <= 1.25x.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from lsx.landscape.directions import random_direction
from lsx.landscape.evaluator import Evaluator
from lsx.landscape.flat import FlatParams
from lsx.landscape.grids import grid2d
from lsx.models import build_model


def digits_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images[:n] / 16.0, dtype=torch.float32)[:, None]  # (n, 1, 8, 8), as is
    return x, torch.as_tensor(d.target[:n], dtype=torch.long)


def synthetic_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def baseline(model, sd0, dirs_sd, points, x, y, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Per point: a new state dict θ0 + Σ c·d, load_state_dict, a DataLoader pass (the original code's pattern)."""
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    losses, accs = [], []
    for c in points:
        sd = {k: v.clone() for k, v in sd0.items()}
        for j, d in enumerate(dirs_sd):
            for k, dk in d.items():
                sd[k] = sd[k] + float(c[j]) * dk
        model.load_state_dict(sd)
        model.eval()
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for xb, yb in loader:
                out = model(xb)
                total += float(F.cross_entropy(out, yb, reduction="sum"))
                correct += int((out.argmax(1) == yb).sum())
                n += len(yb)
        losses.append(total / n)
        accs.append(correct / n)
    return np.array(losses), np.array(accs)


def floor(ev: Evaluator, n_points: int, module: torch.nn.Module | None = None) -> None:
    """The engine's forward passes (same chunks, same memory format) with no parameter changes."""
    chunks = ev._chunked["train"]
    module = module if module is not None else ev.forward_model
    with torch.inference_mode():
        for _ in range(n_points):
            for xb, _ in chunks:
                module(xb)


def setup(name: str, model_name: str, data, side: int) -> dict:
    x, y = data
    torch.manual_seed(0)
    model = build_model(model_name, x.shape[1], tuple(x.shape[2:]), int(y.max()) + 1).eval()
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, seed, "filter", "biasbn") for seed in (1, 2)])
    grid = grid2d((-1, 1, side), (-1, 1, side))
    sd0 = {k: v.clone() for k, v in model.state_dict().items()}
    # the same direction vectors, as state-dict deltas for the baseline
    dirs_sd = [{e.name: d[e.start : e.stop].view(e.shape).clone() for e in flat.entries} for d in dirs]
    return dict(name=name, model=model, theta0=theta0, dirs=dirs, dirs_sd=dirs_sd, sd0=sd0, grid=grid, x=x, y=y)


def run_baseline(c: dict, repeats: int) -> None:
    model = copy.deepcopy(c["model"])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        c["base_loss"], c["base_acc"] = baseline(model, c["sd0"], c["dirs_sd"], c["grid"].points, c["x"], c["y"])
        times.append(time.perf_counter() - t)
    c["t_base"] = min(times)


def run_engine_and_floor(c: dict, repeats: int) -> dict:
    ev = Evaluator(copy.deepcopy(c["model"]), train=(c["x"], c["y"]), test=None)
    t_eng, t_floor, t_plain = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        res = ev.evaluate(c["theta0"], c["dirs"], c["grid"])
        t_eng.append(time.perf_counter() - t)
        t = time.perf_counter()
        floor(ev, c["grid"].num_points)
        t_floor.append(time.perf_counter() - t)
        t = time.perf_counter()
        floor(ev, c["grid"].num_points, ev.model)
        t_plain.append(time.perf_counter() - t)
    return dict(
        case=c["name"], points=c["grid"].num_points, images=len(c["x"]), chunk=ev.chunk,
        graph="none" if ev.graph is None else f"{len(ev.graph.pairs)} BN folded",
        baseline=c["t_base"], engine=min(t_eng), floor=min(t_floor), plain=min(t_plain),
        max_abs_diff=float(np.nanmax(np.abs(res["train_loss"] - c["base_loss"]))),
        acc_equal=bool(np.array_equal(res["train_acc"], c["base_acc"])),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="engine/floor repetitions (fastest counts)")
    ap.add_argument("--baseline-repeats", type=int, default=2, help="baseline repetitions (fastest counts)")
    ap.add_argument("--digits-grid", type=int, default=7, help="grid side for simple_cnn/digits (points = side²)")
    ap.add_argument("--resnet-grid", type=int, default=4, help="grid side for resnet20/synthetic")
    ap.add_argument("--digits-images", type=int, default=1000)
    ap.add_argument("--resnet-images", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [
        setup("simple_cnn / digits 8x8", "simple_cnn", digits_data(args.digits_images), args.digits_grid),
        setup("resnet20 / synthetic 32x32x3", "resnet20", synthetic_data(args.resnet_images), args.resnet_grid),
    ]
    for c in cases:  # before the engine exists: the default allocator, as the original code runs
        run_baseline(c, max(1, args.baseline_repeats))
    rows = [run_engine_and_floor(c, max(1, args.repeats)) for c in cases]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fastest of {args.baseline_repeats} (baseline) "
          f"and {args.repeats} (engine, floor) runs")
    print("| case | points x images | chunk | baseline s | engine s | floor s | plain fwd s | baseline/engine "
          "| engine/floor | max abs Δloss | acc equal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['points']} x {r['images']} | {r['chunk']} | {r['baseline']:.2f} | {r['engine']:.2f} | "
            f"{r['floor']:.2f} | {r['plain']:.2f} | {r['baseline'] / r['engine']:.1f}x | {r['engine'] / r['floor']:.2f}x | "
            f"{r['max_abs_diff']:.1e} | {r['acc_equal']} |"
        )


if __name__ == "__main__":
    main()
