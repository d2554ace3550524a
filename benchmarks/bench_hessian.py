"""Hessian benchmark: lsx's top eigenvalue (ARPACK Lanczos, basis sized for k) vs PyHessian's power iteration.

Same model, weights and data (one full batch, eval mode) for both, interleaved round by round with the
order rotated (``timing.py``). PyHessian is re-written in ``baselines.py`` (gradient with create_graph
once, HVPs by autograd.grad, stop when the Rayleigh quotient changes by < 1e-3 relative). Accuracy is the
relative error against a reference from ``eigsh`` at tol 1e-8 computed once outside the timing.
Cases: simple_cnn on 8x8 digits after 150 Adam steps, resnet20 on synthetic 32x32x3 after 20 steps.
Usage: ``python benchmarks/bench_hessian.py [--repeats 3] [--threads 1]``. Target: lsx ≤ 1.0x PyHessian's time.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from baselines import pyhessian_top_eigenvalue
from bench_surface import digits_data, synthetic_data
from timing import fmt_ratio, fmt_time, header, interleave, print_block, set_threads, table

from lsx.landscape.curvature.hessian import top_eigenpairs, trace_estimate
from lsx.landscape.engine.flat import FlatParams, functional_loss
from lsx.models import build_model


def trained(model_name: str, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(model_name, x.shape[1], tuple(x.shape[2:]), int(y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def run_case(name, model_name, data, steps, lr, repeats, warmup, trace_tol):
    x, y = data
    model = trained(model_name, x, y, steps, lr)
    flat = FlatParams(model)
    theta = flat.get()
    f = functional_loss(model, flat, [(x, y)])
    ref = top_eigenpairs(f, theta, 1, tol=1e-8, ncv=8).values[0]
    seeds = iter(range(10**6))  # every round starts both methods from a new random vector
    contenders = {
        "PyHessian power iteration": lambda: pyhessian_top_eigenvalue(model, x, y, seed=next(seeds)),
        "lsx top_eigenpairs(k=1)": lambda: (lambda r: (r.values[0], r.matvecs))(top_eigenpairs(f, theta, 1, seed=next(seeds))),
    }
    # the accuracy and HVP counts of every timed call, not just the last
    record = {n: [] for n in contenders}
    wrapped = {n: (lambda n=n, fn=fn: record[n].append(fn())) for n, fn in contenders.items()}
    t = interleave(wrapped, repeats, warmup)
    t.seconds = {n: v for n, v in t.seconds.items()}
    rows = []
    for n in contenders:
        errs = [abs(v - ref) / abs(ref) for v, _ in record[n][warmup:]]
        hvps = [h for _, h in record[n][warmup:]]
        rows.append(
            f"| {name} | {n} | {fmt_time(t, n)} | {fmt_ratio(t, n, 'PyHessian power iteration')} | "
            f"{min(hvps)}–{max(hvps)} | {max(errs):.1e} |"
        )
    est = trace_estimate(f, theta, max_samples=200, rel_tol=trace_tol, seed=0)
    note = (
        f"{name}: λ_max = {ref:.4g}; adaptive Hutchinson trace at rel. stderr ≤ {trace_tol}: "
        f"{est.mean:.4g} ± {est.stderr:.2g} after {est.samples} HVPs (max 200)"
    )
    return rows, note


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds of the resnet20 case")
    ap.add_argument("--digits-repeats", type=int, default=15, help="timed rounds of the (sub-second) simple_cnn case")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--digits-images", type=int, default=1000)
    ap.add_argument("--resnet-images", type=int, default=128)
    ap.add_argument("--trace-tol", type=float, default=0.05)
    ap.add_argument("--only", choices=("digits", "resnet"), default=None)
    args = ap.parse_args()
    set_threads(args.threads)
    title = header("bench_hessian", f"{args.digits_repeats} (simple_cnn) / {args.repeats} (resnet20)", args.warmup)
    rows, notes = [], []
    cases = [
        ("simple_cnn / digits 8x8", "simple_cnn", lambda: digits_data(args.digits_images), 150, 1e-2, args.digits_repeats),
        ("resnet20 / synthetic 32x32x3", "resnet20", lambda: synthetic_data(args.resnet_images), 20, 1e-3, args.repeats),
    ]
    for name, model_name, data, steps, lr, repeats in cases:
        if args.only and not model_name.startswith({"digits": "simple", "resnet": "resnet"}[args.only]):
            continue
        r, n = run_case(name, model_name, data(), steps, lr, repeats, args.warmup, args.trace_tol)
        rows += r
        notes.append(f"{n}; {repeats} timed rounds")
    lines = [
        *table(["case", "method", "median s (min–max)", "time ÷ PyHessian", "HVPs", "max rel. error of λ_max"], rows),
        "",
        *[f"- {n}" for n in notes],
    ]
    print_block("hessian", title, lines)


if __name__ == "__main__":
    main()
