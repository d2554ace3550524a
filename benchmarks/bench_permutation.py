"""Permutation benchmark: weight matching of two ResNet-20s (target ≤ 10 s on one core), and activation
matching against one evaluation pass over the same data subset (the issue's target: within that time).

Contenders interleaved round by round with the order rotated (``timing.py``). Weight matching: two
ResNet-20s (CIFAR shape, 32x32x3) briefly trained from different seeds on synthetic data (``--steps`` Adam
steps each, so their weights are not the symmetric initialization), ``max_iter=100`` sweeps; the row
also says how many groups and units were matched. Activation matching: the two networks' correlations
on ``--images`` inputs (a forward pass of each network and one assignment per group). The reference is
one evaluation pass of one network over the same inputs as lsx evaluates (``Evaluator.evaluate_at``
on the train split: folded BatchNorm, channels_last, chunks, loss and accuracy); the model's plain
forward (``model(x)`` under ``no_grad``, one batch) is shown beside it. Activation matching runs two
networks, so one pair cannot beat one pass of one; the last line gives its time ÷ two evaluation passes.
A set of ``--set`` networks matched pair by pair for every pair (``activation_matching_pairs``, what
``analysis=permutation_barrier pairs=all`` and ``analysis.align=activation`` run) evaluates each network
once; its row is the whole set's time ÷ its number of pairs.
Usage: ``python benchmarks/bench_permutation.py [--repeats 3] [--threads 1] | tee outputs/bench/permutation.md``,
then ``python benchmarks/update_readme.py outputs/bench/permutation.md`` (the ``permutation`` block of
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import copy
from itertools import combinations

import torch
import torch.nn.functional as F
from bench_surface import synthetic_data
from timing import fmt_ratio, fmt_time, header, interleave, print_block, set_threads, table

from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.permutation import derive_spec
from lsx.landscape.permutation.activation_matching import activation_matching, activation_matching_pairs
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
    ap.add_argument("--set", type=int, default=6, help="networks of the every-pair row (>= 3)")
    args = ap.parse_args()
    if args.set < 3:
        ap.error(f"--set {args.set}: valid: >= 3 networks")
    set_threads(args.threads)
    x, y = synthetic_data(max(args.images, 256))
    nets = [trained("resnet20", x, y, args.steps, seed) for seed in range(args.set)]
    a, b = nets[0], nets[1]
    every_pair = list(combinations(range(args.set), 2))
    subset, labels = x[: args.images], y[: args.images]
    spec = derive_spec(a, subset[:2])
    sa, sb = a.state_dict(), b.state_dict()
    ev = Evaluator(copy.deepcopy(a), train=(subset, labels))  # its own copy: it converts the model to channels_last
    theta = ev.flat.get()

    @torch.no_grad()
    def plain_pass():
        return a(subset)

    wm, am = "weight matching (2 x ResNet-20)", f"activation matching ({args.images} inputs, 2 nets)"
    aset = f"activation matching, all {len(every_pair)} pairs of {args.set} nets, per pair ({args.images} inputs)"
    ref, plain = f"one evaluation pass ({args.images} inputs, 1 net)", f"plain forward, model(x) ({args.images} inputs, 1 net)"
    contenders = {
        wm: lambda: weight_matching(spec, sa, sb),
        am: lambda: activation_matching(spec, a, b, subset),
        aset: lambda: activation_matching_pairs(spec, nets, every_pair, subset),
        ref: lambda: ev.evaluate_at(theta, splits=("train",)),
        plain: plain_pass,
    }
    t = interleave(contenders, args.repeats, args.warmup)
    t.seconds[aset] = [v / len(every_pair) for v in t.seconds[aset]]  # the whole set's time, per pair
    rows = [f"| {n} | {fmt_time(t, n)} | {fmt_ratio(t, n, ref)} |" for n in contenders]
    one_pair, per_pair = t.ratio(am, ref)[0], t.ratio(aset, ref)[0]  # the table's ratios: medians of per-round ratios
    title = header("bench_permutation", args.repeats, args.warmup)
    lines = [
        f"ResNet-20 (32x32x3): {len(spec.groups)} permutation groups, {sum(spec.sizes.values())} units; "
        f"networks trained {args.steps} Adam steps from seeds 0 and 1.",
        "",
        *table(["contender", "median s (min–max)", "time ÷ one evaluation pass"], rows),
        "",
        f"- weight matching target ≤ 10 s: {'met' if t.median(wm) <= 10 else 'NOT met'} ({t.median(wm):.2f} s)",
        f"- activation matching target ≤ one evaluation pass: {'met' if one_pair <= 1 else 'NOT met'} for one pair "
        f"({one_pair:.2f}x); it runs both networks: {one_pair / 2:.2f}x two evaluation passes",
        f"- per pair when every pair of {args.set} networks is matched (each network evaluated once): "
        f"{'met' if per_pair <= 1 else 'NOT met'} ({per_pair:.2f}x one evaluation pass)",
    ]
    print_block("permutation", title, lines)


if __name__ == "__main__":
    main()
