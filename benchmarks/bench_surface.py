"""Surface-evaluation benchmark: the lsx engine vs the original code, the loss-landscapes package, and the floor.

Same model weights, data subset and 2D grid (filter-normalized directions, biases/BN ignored) for every
contender, interleaved round by round in one process with the order rotated (see ``timing.py``):
- original:        Li et al.'s set_weights + eval_loss per point, DataLoader at batch 128 (``baselines.py``);
- loss-landscapes: the PyPI package's planar_interpolation + Loss metric, under no_grad, on the same number
                   of points (its own off-by-one grid; checked against the engine at the points it visits);
- engine:          ``Evaluator().evaluate`` as the jobs run it (in-place flat update, inference mode, channels_last,
                   chunks, fused inference graph, cheap summed loss, first-layer plane where ``plane="auto"`` picks it);
- engine, plane on/off: the same with the first-layer plane forced the other way than "auto" chose (the plane
                   combines the first layer's output at every point from outputs precomputed at θ0 and along each
                   direction; exact for a linear first layer);
- floor:           the engine's forward passes with no parameter changes (same chunks, same fused graph);
- plain fwd:       the same passes through the unfused channels_last model;
- N local workers: the engine with its points split over N forked 1-thread processes (``workers=N``);
                   its ratio to the engine is the process-level scaling (ideal 1/N on N idle cores).
Cases: simple_cnn and mlp on sklearn's 8x8 digits, mlp on synthetic 28x28 (MNIST-shaped: a 784-input first layer,
where the first-layer plane pays most), resnet20 on synthetic 32x32x3 images.
Note: the engine tunes the process allocator (``lsx.landscape.engine.alloc``) when it is built, and all
contenders then run in that process, so the baselines get that benefit too.

Usage: ``python benchmarks/bench_surface.py [--repeats 5] [--threads 1]``; the markdown between the
``<!-- bench:surface -->`` markers goes into the README with ``python benchmarks/update_readme.py FILE``.
Targets: engine ≤ 1.05x floor; original ≥ 4x engine on simple_cnn/digits; ≥ 1.3x on resnet20.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from baselines import loss_landscapes_plane, loss_landscapes_points, original_surface, per_parameter
from timing import fmt_ratio, fmt_time, header, interleave, print_block, set_threads, table

from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.grids import grid2d
from lsx.landscape.surfaces.directions import random_direction
from lsx.models import build_model


def digits_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images[:n] / 16.0, dtype=torch.float32)[:, None]  # (n, 1, 8, 8), as is
    return x, torch.as_tensor(d.target[:n], dtype=torch.long)


def synthetic_data(n: int, seed: int = 0, shape: tuple[int, ...] = (3, 32, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def floor(ev: Evaluator, n_points: int, module: torch.nn.Module | None = None) -> None:
    """The engine's forward passes (same chunks, same memory format) with no parameter changes."""
    module = module if module is not None else ev.forward_model
    with torch.inference_mode():
        for _ in range(n_points):
            for xb, _ in ev._chunked["train"]:
                module(xb)


def per_point_work(ev: Evaluator, theta0: torch.Tensor, dirs: torch.Tensor, reps: int = 200) -> tuple[float, float]:
    """Median seconds per point of what the engine adds to the forward passes: forming θ0 + Σ c_k d_k and
    writing it into the model (+ the fused graph's sync), and the summed loss and hits of every chunk."""
    import statistics
    import time

    from lsx.landscape.engine.evaluator import summed_loss_and_hits

    th64, d64 = theta0.double(), dirs.double()
    point, c = torch.empty_like(th64), torch.full((len(dirs),), 0.25, dtype=torch.float64)
    with torch.inference_mode():
        logits = [(ev.forward_model(xb), yb) for xb, yb in ev._chunked["train"]]

    def update() -> None:
        torch.addmv(th64, d64.T, c, out=point)
        ev._load_point(point)
        ev._prepare_forward()

    @torch.inference_mode()
    def loss() -> None:
        for z, yb in logits:
            total, hits = summed_loss_and_hits(z, yb)
        float(total), int(hits)

    out = []
    for f in (update, loss):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                f()
            times.append((time.perf_counter() - t) / reps)
        out.append(statistics.median(times))
    ev.flat.set_(theta0)
    ev._prepare_forward()
    return out[0], out[1]


def has_loss_landscapes() -> bool:
    try:
        import loss_landscapes  # noqa: F401
    except ImportError:
        return False
    return True


def run_case(
    name: str, model_name: str, data, side: int, repeats: int, warmup: int, args_workers: int = 2
) -> tuple[list[str], list[str]]:
    x, y = data
    torch.manual_seed(0)
    model = build_model(model_name, x.shape[1], tuple(x.shape[2:]), int(y.max()) + 1).eval()
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, seed, "filter", "biasbn") for seed in (1, 2)])
    grid = grid2d((-1, 1, side), (-1, 1, side))
    dirs_pp = [per_parameter(flat, d) for d in dirs]
    original_model = copy.deepcopy(model)
    ev = Evaluator(copy.deepcopy(model), train=(x, y), test=None)
    ev.evaluate(theta0, dirs, grid)  # lets plane="auto" decide
    auto_plane, auto_reason = ev.plane_active, ev.plane_reason
    other = "engine, plane off" if auto_plane else "engine, plane on"
    ev_other = Evaluator(copy.deepcopy(model), train=(x, y), test=None, plane=not auto_plane)
    contenders = {
        "original (Li et al.)": lambda: original_surface(original_model, dirs_pp, grid.points, x, y),
        "engine": lambda: ev.evaluate(theta0, dirs, grid),
        other: lambda: ev_other.evaluate(theta0, dirs, grid),
        "floor (fused fwd)": lambda: floor(ev, grid.num_points),
        "plain fwd": lambda: floor(ev, grid.num_points, ev.model),
    }
    if args_workers > 1:
        contenders[f"engine, {args_workers} local workers"] = lambda: ev.evaluate(theta0, dirs, grid, workers=args_workers)
    ll_points = None
    if has_loss_landscapes():
        ll_points = loss_landscapes_points(side, 2.0 / (side - 1))
        contenders["loss-landscapes pkg"] = lambda: loss_landscapes_plane(model, flat, theta0, dirs, side, x, y)
    t = interleave(contenders, repeats, warmup)

    res = t.results["engine"]
    base_loss, base_acc = t.results["original (Li et al.)"]
    checks = [
        f"{name}: engine vs original max |Δloss| {np.max(np.abs(res['train_loss'] - base_loss)):.1e}, "
        f"accuracies equal: {bool(np.allclose(res['train_acc'], base_acc))}"
    ]
    rp = t.results[other]
    checks.append(
        f"{name}: plane=\"auto\" {'combines the first layer' if auto_plane else 'recomputes the first layer'} "
        f"({auto_reason}); {other} vs engine max |Δloss| {np.max(np.abs(rp['train_loss'] - res['train_loss'])):.1e}"
    )
    per_point = (t.median("engine") - t.median("floor (fused fwd)")) / grid.num_points
    upd_s, loss_s = per_point_work(ev, theta0, dirs)
    checks.append(
        f"{name}: engine − floor = {per_point * 1e3:+.3f} ms per point "
        f"({per_point / (t.median('floor (fused fwd)') / grid.num_points):+.1%} of a point's forward passes); "
        f"the engine's own work per point, timed alone: moving the weights {upd_s * 1e3:.3f} ms, "
        f"loss and hits {loss_s * 1e3:.3f} ms"
    )
    if ll_points is not None:
        at_ll = ev.evaluate(theta0, dirs, ll_points)["train_loss"]
        checks.append(
            f"{name}: loss-landscapes vs engine at the package's own points max |Δloss| "
            f"{np.max(np.abs(t.results['loss-landscapes pkg'] - at_ll)):.1e}; its y offsets per column: "
            f"{'/'.join(f'{v:+.2f}' for v in ll_points[:: side][:2, 1])} (off by one step between columns)"
        )
    rows = []
    for c in contenders:
        rows.append(
            f"| {name} | {c} | {grid.num_points} x {len(x)} | {fmt_time(t, c)} | {fmt_ratio(t, c, 'engine')} | "
            f"{fmt_ratio(t, c, 'floor (fused fwd)')} |"
        )
    return rows, checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed interleaved rounds")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument("--digits-grid", type=int, default=11, help="grid side for simple_cnn/digits (points = side²)")
    ap.add_argument("--resnet-grid", type=int, default=4, help="grid side for resnet20/synthetic")
    ap.add_argument("--digits-images", type=int, default=1000)
    ap.add_argument("--resnet-images", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    ap.add_argument("--only", choices=("digits", "mlp", "mlp28", "resnet"), nargs="+", default=None, help="run only these cases")
    args = ap.parse_args()
    set_threads(args.threads)
    title = header("bench_surface", args.repeats, args.warmup)
    rows, checks = [], []
    if args.only is None or "digits" in args.only:
        r, c = run_case(
            "simple_cnn / digits 8x8", "simple_cnn", digits_data(args.digits_images), args.digits_grid, args.repeats, args.warmup
        )
        rows += r
        checks += c
    if args.only is None or "mlp" in args.only:
        r, c = run_case("mlp / digits 8x8", "mlp", digits_data(args.digits_images), args.digits_grid, args.repeats, args.warmup)
        rows += r
        checks += c
    if args.only is None or "mlp28" in args.only:
        r, c = run_case(
            "mlp / synthetic 28x28",
            "mlp",
            synthetic_data(args.digits_images, shape=(1, 28, 28)),
            args.digits_grid,
            args.repeats,
            args.warmup,
        )
        rows += r
        checks += c
    if args.only is None or "resnet" in args.only:
        r, c = run_case(
            "resnet20 / synthetic 32x32x3",
            "resnet20",
            synthetic_data(args.resnet_images),
            args.resnet_grid,
            args.repeats,
            args.warmup,
        )
        rows += r
        checks += c
    if not has_loss_landscapes():
        checks.append("loss-landscapes not installed (pip install loss-landscapes==3.0.6): its row is missing")
    lines = [
        *table(["case", "contender", "points x images", "median s (min–max)", "time ÷ engine", "time ÷ floor"], rows),
        "",
        *[f"- {c}" for c in checks],
    ]
    print_block("surface", title, lines)


if __name__ == "__main__":
    main()
