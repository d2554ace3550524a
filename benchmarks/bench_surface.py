"""Surface-evaluation benchmark: lsx engine vs a per-point baseline vs the forward-pass floor.

Side by side in one run, same model, same data subset, same grid:
- baseline: what the original loss-landscape code does per point — build θ0+Σc·d as a state
  dict, ``load_state_dict`` it, and run a DataLoader pass over the subset (NCHW, batch 128);
- engine:   lsx.landscape.Evaluator (in-place flat update, inference_mode, channels_last, chunks);
- floor:    the same number of forward passes over the same chunks with no parameter changes.
Usage: python benchmarks/bench_surface.py [--grid 7] [--repeats 1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from lsx.data import build_datamodule
from lsx.landscape.directions import random_direction
from lsx.landscape.evaluator import Evaluator
from lsx.landscape.flat import FlatParams
from lsx.landscape.grids import grid_points
from lsx.models import build_model


def baseline(model, theta0_sd, dirs_sd, coords, x, y, batch=128):
    """Per point: new state dict, load_state_dict, DataLoader pass (the original code's pattern)."""
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    out = []
    for c in coords:
        sd = {k: v.clone() for k, v in theta0_sd.items()}
        for k in dirs_sd[0]:
            for j, d in enumerate(dirs_sd):
                sd[k] = sd[k] + float(c[j]) * d[k]
        model.load_state_dict(sd)
        model.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for xb, yb in loader:
                tot += float(F.cross_entropy(model(xb), yb, reduction="sum"))
                n += len(yb)
        out.append(tot / n)
    return np.array(out)


def floor(ev: Evaluator, n_points: int):
    """The same chunked forward passes, no parameter updates: the best any evaluator can do."""
    x, y = ev.sets["train"]
    chunks = ev._chunks(x, y)
    with torch.inference_mode():
        for _ in range(n_points):
            for xb, yb in chunks:
                F.cross_entropy(ev.model(xb), yb, reduction="sum")


def setup(name, model_name, dm_kwargs, model_kwargs, grid, n_train):
    dm = build_datamodule(**dm_kwargs).prepare()
    x, y = dm.split("train")
    x, y = x[:n_train], y[:n_train]
    s = dm.shape
    torch.manual_seed(0)
    model = build_model(model_name, s.in_channels, (s.height, s.width), s.num_classes, **model_kwargs).eval()
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, seed, "filter", "biasbn") for seed in (1, 2)])
    ax = np.linspace(-1, 1, grid)
    coords = grid_points(ax, ax)
    # directions as state-dict deltas for the baseline (same vectors)
    sd0 = {k: v.clone() for k, v in model.state_dict().items()}
    dirs_sd = []
    for d in dirs:
        dd = {k: torch.zeros_like(v) for k, v in sd0.items() if v.is_floating_point()}
        for e in flat.entries:
            dd[e.name] = d[e.start : e.stop].view(e.shape).clone()
        dirs_sd.append(dd)

    return dict(name=name, model=model, flat=flat, dirs=dirs, dirs_sd=dirs_sd, sd0=sd0, coords=coords, x=x, y=y)


def run_baseline(c):
    t = time.perf_counter()
    c["base"] = baseline(c["model"], c["sd0"], c["dirs_sd"], c["coords"], c["x"], c["y"])
    c["t_base"] = time.perf_counter() - t
    c["model"].load_state_dict(c["sd0"])


def run_engine(c):
    name, model, flat, dirs, coords, x, y, base, t_base = (c[k] for k in ("name", "model", "flat", "dirs", "coords", "x", "y", "base", "t_base"))
    ev = Evaluator(model, train=(x, y), test=None)
    t = time.perf_counter()
    res = ev.evaluate(flat.get(), dirs, coords)
    t_eng = time.perf_counter() - t
    t = time.perf_counter()
    floor(ev, len(coords))
    t_floor = time.perf_counter() - t
    err = float(np.nanmax(np.abs(res["train_loss"] - base)))
    return dict(case=name, points=len(coords), images=len(x), baseline=t_base, engine=t_eng, floor=t_floor, max_abs_diff=err)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=7, help="grid side (points = grid²)")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    cases = [
        setup("simple_cnn / digits 8x8", "simple_cnn", {"name": "digits"}, {}, args.grid, 1000),
        setup("resnet20 / synthetic 32x32", "resnet20", {"name": "synthetic", "num_train": 512, "image_size": 32},
              {}, max(3, args.grid - 2), 512),
    ]
    # all baselines first: the engine tunes the process allocator (lsx.landscape.alloc) on first use,
    # which would otherwise speed up baselines that run after it
    for c in cases:
        run_baseline(c)
    rows = [run_engine(c) for c in cases]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"| case | points x images | baseline s | engine s | floor s | baseline/engine | engine/floor | max |Δloss| |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['points']} x {r['images']} | {r['baseline']:.2f} | {r['engine']:.2f} | {r['floor']:.2f} | "
              f"{r['baseline'] / r['engine']:.2f}x | {r['engine'] / r['floor']:.2f}x | {r['max_abs_diff']:.1e} |")


if __name__ == "__main__":
    main()
