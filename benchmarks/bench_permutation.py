"""Permutation benchmark: weight matching of two ResNet-20s (target ≤ 10 s on one core), and activation
matching against one evaluation pass over the same data subset (target: within that time).

Contenders interleaved round by round with the order rotated (``timing.py``). Weight matching: two
ResNet-20s (CIFAR shape, 32x32x3) briefly trained from different seeds on synthetic data (``--steps`` Adam
steps each, so their weights are not the symmetric initialization), ``max_iter=100`` sweeps; the row
also says how many groups and units were matched. Activation matching: the two networks' correlations
on ``--images`` inputs (two forward passes and one assignment per group) vs one forward pass of one
network over the same inputs (what an evaluation of that subset costs).
Usage: ``python benchmarks/bench_permutation.py [--repeats 3] [--threads 1]``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from bench_surface import synthetic_data
from timing import block, fmt_ratio, fmt_time, header, interleave, load_average, set_threads

from lsx.landscape.permutation import derive_spec
from lsx.landscape.permutation.activation_matching import activation_matching
from lsx.landscape.permutation.weight_matching import weight_matching
from lsx.models import build_model


def trained(model_name: str, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(model_name, x.shape[1], tuple(x.shape[2:]), int(y.max()) + 1, **kw)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="Adam steps per network before matching")
    ap.add_argument("--images", type=int, default=500, help="inputs of the activation-matching subset")
    args = ap.parse_args()
    set_threads(args.threads)
    x, y = synthetic_data(max(args.images, 256))
    a, b = (trained("resnet20", x, y, args.steps, seed) for seed in (0, 1))
    subset = x[: args.images]
    spec = derive_spec(a, subset[:2])
    sa, sb = a.state_dict(), b.state_dict()

    @torch.no_grad()
    def one_pass():
        return a(subset)

    contenders = {
        "weight matching (2 x ResNet-20)": lambda: weight_matching(spec, sa, sb),
        f"activation matching ({args.images} inputs)": lambda: activation_matching(spec, a, b, subset),
        f"one evaluation pass ({args.images} inputs, 1 net)": one_pass,
    }
    t = interleave(contenders, args.repeats, args.warmup)
    ref = f"one evaluation pass ({args.images} inputs, 1 net)"
    rows = [f"| {n} | {fmt_time(t, n)} | {fmt_ratio(t, n, ref)} |" for n in contenders]
    wm = t.median("weight matching (2 x ResNet-20)")
    title = header("bench_permutation", args.repeats, args.warmup)
    lines = [
        title + f"; after: {load_average()}",
        "",
        f"ResNet-20 (32x32x3): {len(spec.groups)} permutation groups, {sum(spec.sizes.values())} units; "
        f"networks trained {args.steps} Adam steps from seeds 0 and 1.",
        "",
        "| contender | median s (min–max) | time ÷ one evaluation pass |",
        "|---|---|---|",
        *rows,
        "",
        f"- weight matching target ≤ 10 s: {'met' if wm <= 10 else 'NOT met'} ({wm:.2f} s)",
        "- activation matching runs both networks over the subset (two passes) plus one assignment per group",
    ]
    print(block("permutation", lines))


if __name__ == "__main__":
    main()
