"""``analysis=permutation_barrier``: is the straight line between independent optima low-loss once
hidden units are permuted to match? (Entezari et al. 2022; Ainsworth et al. 2023; Jordan et al. 2023)

For every pair of ``optima.seeds`` (``pairs: disjoint`` — (s0, s1), (s2, s3), ...: pairs that share no
trained model, the independent units the claims use — or ``all``): loss and error along
θ(α) = (1−α)θ_a + α·π(θ_b) on the landscape subset (train and test) for π = identity (naive), weight
matching and activation matching, each plain (BN statistics interpolated with the weights), with BN
statistics re-estimated at each α (``_reset``; BN networks) and with REPAIR (``_repair``); the
Entezari barrier of each curve; ‖θ_a − π(θ_b)‖ before and after; the time each alignment took, beside
one evaluation pass over the matching subset (activation matching runs every optimum once for all its
pairs, so a pair's time is its even share). Activation matching and REPAIR use the first
``match_examples`` train examples of the landscape subset.
"""

from __future__ import annotations

import time
from itertools import combinations
from typing import Any, Mapping

import numpy as np
import torch

from lsx.landscape.engine.bn_policy import has_batchnorm
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.progress import progress_iter
from lsx.landscape.permutation.activation_matching import activation_matching_timed
from lsx.landscape.permutation.barrier import alpha_grid
from lsx.landscape.permutation.pairs import METHODS, analyse_pair
from lsx.landscape.permutation.spec import derive_spec
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import build_evaluator, record_centre_loss, same_architecture

PAIRINGS = ("disjoint", "all")
BARRIERS = ("train_loss", "test_loss", "train_error", "test_error")


def seed_pairs(seeds: list[int], pairing: str) -> list[tuple[int, int]]:
    """``disjoint``: consecutive pairs (each optimum in one pair: independent units); ``all``: every pair."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"optima.seeds has duplicates: {seeds}")
    if pairing == "disjoint":
        if len(seeds) < 2 or len(seeds) % 2:
            raise ValueError(
                f"analysis.pairs=disjoint needs an even number (>= 2) of optima.seeds, got {len(seeds)}: {seeds}; "
                "give one more seed, or analysis.pairs=all (every pair)"
            )
        return [(seeds[i], seeds[i + 1]) for i in range(0, len(seeds), 2)]
    if pairing == "all":
        if len(seeds) < 2:
            raise ValueError(f"pairs=all needs at least 2 optima.seeds, got {seeds}")
        return list(combinations(seeds, 2))
    raise ValueError(f"analysis.pairs={pairing!r}; valid: {', '.join(PAIRINGS)}")


@register_job("permutation_barrier")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    methods = list(a["methods"])
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"analysis.methods={methods}; valid entries: {', '.join(METHODS)}")
    pairs = seed_pairs([int(s) for s in ctx.cfg["optima"]["seeds"]], str(a["pairs"]))
    seeds = sorted({s for p in pairs for s in p})
    ckpts = {s: r.load() for s, r in zip(seeds, ctx.optima(seeds))}
    same_architecture(list(ckpts.values()))
    alphas = alpha_grid(int(a["alpha_num"]))
    subset = ctx.landscape_subset()
    n_match = int(a["match_examples"])
    if n_match < 2:
        raise ValueError(f"analysis.match_examples={n_match}; valid: >= 2 train examples")
    inputs = subset.train[0][:n_match]
    first = ckpts[seeds[0]]
    build = first.build_model
    spec = derive_spec(build(), inputs[:2])
    bn = has_batchnorm(build())
    reset = bool(a["bn_reset"]) and bn
    evaluators = {False: build_evaluator(ctx, build(), "states", a["chunk"])}
    if reset:
        evaluators[True] = build_evaluator(ctx, build(), "upbn", a["chunk"])
    scratch = build()
    param_keys = [n for n, _ in scratch.named_parameters()]

    def evaluate(state: Mapping[str, torch.Tensor], bn_reset: bool) -> dict[str, float]:
        ev = evaluators[bn_reset]
        scratch.load_state_dict(state)
        return ev.evaluate_at(FlatParams(scratch, include_buffers=not bn_reset).get())

    found = {}
    if "activation" in methods:
        found = ctx.stage("activation_matching", lambda: _match_activations(build, ckpts, pairs, spec, inputs))
    rows, curves, distances, seconds = [], {}, {m: [] for m in methods}, {m: [] for m in methods}
    # a bar on a terminal, a log line every 30 s in a log file: at paper scale a pair is minutes of evaluations
    for sa, sb in progress_iter(pairs, len(pairs), "permutation_barrier pairs", ctx.point_progress, unit="pair"):
        res = ctx.stage(
            f"pair_{sa}_{sb}",
            lambda sa=sa, sb=sb: analyse_pair(
                build,
                spec,
                ckpts[sa].state_dict,
                ckpts[sb].state_dict,
                alphas,
                evaluate,
                inputs,
                methods=methods,
                repair=bool(a["repair"]),
                reset=reset,
                seed=int(a["weight_matching"]["seed"]),
                max_iter=int(a["weight_matching"]["max_iter"]),
                param_keys=param_keys,
                found={"activation": found[(sa, sb)]} if found else None,
            ),
        )
        ends = res.curves[next(iter(res.curves))]["train_loss"]  # α = 0 is a, α = 1 is b (permuted: the same function)
        record_centre_loss(ctx, ckpts[sa], "states", float(ends[0]))  # the losses the barriers are measured from
        record_centre_loss(ctx, ckpts[sb], "states", float(ends[-1]))
        for m in methods:
            distances[m].append(res.distance[m])
            seconds[m].append(res.seconds[m])
        for variant, b in res.barriers.items():
            method = variant.split("_")[0]
            c = res.curves[variant]
            rows.append(
                {
                    "pair": f"{sa}-{sb}",
                    "seeds": [sa, sb],
                    "variant": variant,
                    "method": method,
                    **{f"barrier_{k}": v for k, v in b.items()},
                    "distance": res.distance[method],
                    "distance_naive": res.distance.get("naive"),
                    "align_seconds": res.seconds[method],
                    "train_loss_a": float(c["train_loss"][0]),
                    "train_loss_b": float(c["train_loss"][-1]),
                    "test_error_a": float(1 - c["test_acc"][0]),
                    "test_error_b": float(1 - c["test_acc"][-1]),
                }
            )
            for k, v in c.items():
                curves[f"{sa}-{sb}__{variant}__{k}"] = v
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    atomic_savez(ctx.path("permutation_curves.npz"), alpha=alphas, **curves)
    _plot_curves(alphas, curves, variants, ctx.path("permutation_curves.png"), first.model_name)
    _plot_barriers(rows, variants, ctx.path("permutation_barriers.png"), first.model_name)
    metrics: dict[str, Any] = {
        "pairs": rows,
        "n_pairs": len(pairs),
        "variants": variants,
        "has_batchnorm": bn,
        "match_examples": int(len(inputs)),
        "groups": len(spec.groups),
        "hidden_units": int(sum(spec.sizes.values())),
        "width": ctx.cfg["model"].get("width"),
        "eval_pass_seconds": _eval_pass_seconds(build(), inputs, subset.train[1][:n_match], ctx.loss_fn()),
    }
    for v in variants:
        for k in BARRIERS:
            metrics[f"barrier_{k}_{v}"] = float(np.mean([r[f"barrier_{k}"] for r in rows if r["variant"] == v]))
    for m in methods:
        metrics[f"distance_{m}"] = float(np.mean(distances[m]))
        metrics[f"align_seconds_{m}"] = float(np.mean(seconds[m]))
    arts = {
        "curves": "permutation_curves.npz",
        "plot_curves": "permutation_curves.png",
        "plot_barriers": "permutation_barriers.png",
    }
    return JobOutput(metrics, arts)


def _match_activations(build, ckpts, pairs, spec, inputs) -> dict[tuple[int, int], tuple[Any, float]]:
    """Activation matching of every pair at once: each optimum runs one forward pass over the matching
    subset however many pairs it is in. Per pair: (permutations, its even share of the time)."""
    index = {s: i for i, s in enumerate(ckpts)}
    models = []
    for ckpt in ckpts.values():
        m = build()
        m.load_state_dict(ckpt.state_dict)
        models.append(m)
    found = activation_matching_timed(spec, models, [(index[a], index[b]) for a, b in pairs], inputs)
    return {(a, b): found[(index[a], index[b])] for a, b in pairs}


@torch.no_grad()
def _eval_pass_seconds(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, loss_fn, repeats: int = 3) -> float:
    """Median time of one evaluation pass over the matching subset as lsx evaluates it (the engine's
    evaluator: loss and accuracy of one network), what activation matching is compared to."""
    from lsx.landscape.engine.evaluator import Evaluator

    ev = Evaluator(model, train=(inputs, labels), loss_fn=loss_fn)
    theta = ev.flat.get()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ev.evaluate_at(theta, splits=("train",))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _plot_curves(alphas, curves, variants, path, model_name) -> None:
    from lsx.plots.common import new_figure, save_figure

    fig, axes = new_figure(1, 2, figsize=(11, 4))
    for v in variants:
        for ax, metric, f in ((axes[0], "train_loss", lambda x: x), (axes[1], "test_acc", lambda x: 1 - x)):
            ys = np.array([f(c) for k, c in curves.items() if k.split("__")[1] == v and k.endswith(f"__{metric}")])
            (line,) = ax.plot(alphas, ys.mean(0), label=f"{v} (mean of {len(ys)})")
            for y in ys:
                ax.plot(alphas, y, color=line.get_color(), alpha=0.2, lw=0.7)
    axes[0].set(xlabel="α", ylabel="train loss", title=f"{model_name}: (1−α)θ_a + α·π(θ_b)")
    axes[1].set(xlabel="α", ylabel="test error")
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


def _plot_barriers(rows, variants, path, model_name) -> None:
    from lsx.plots.common import new_figure, save_figure

    fig, axes = new_figure(1, 2, figsize=(11, 4))
    for ax, k in ((axes[0], "barrier_train_loss"), (axes[1], "barrier_test_error")):
        data = [[r[k] for r in rows if r["variant"] == v] for v in variants]
        ax.boxplot(data, showfliers=False)
        for i, d in enumerate(data, 1):
            ax.plot(np.full(len(d), i) + np.linspace(-0.1, 0.1, len(d)), d, "o", ms=3, color="k")
        ax.set_xticks(range(1, len(variants) + 1), variants, rotation=30, fontsize=7)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set(ylabel=k.replace("_", " "), title=f"{model_name}: {k.split('_', 1)[1].replace('_', ' ')} barrier per pair")
    save_figure(fig, path)
