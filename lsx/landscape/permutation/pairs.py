"""One pair of optima, every treatment: the straight line before and after alignment, with and without
BatchNorm RESET and REPAIR, and the barrier of each curve.

Variants (``<method>[_reset|_repair]``): ``naive`` is θ_b as trained; ``weight`` / ``activation`` is θ_b
permuted by that matching. The plain curve interpolates every tensor (BN running statistics too);
``_reset`` re-estimates BN statistics at each α (networks with BN only; the caller's evaluate does it);
``_repair`` applies REPAIR at each α. The caller supplies ``evaluate(state, reset) -> metrics`` on its
own data, so this module knows nothing of datasets or jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .align import match
from .apply import Perms, identity_perms, interpolate_state, permute_state, state_distance
from .barrier import barrier
from .repair import preact_stats, repaired_state, target_stats
from .spec import PermutationSpec

METHODS = ("naive", "weight", "activation")
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc")
Evaluate = Callable[[Mapping[str, torch.Tensor], bool], Mapping[str, float]]


@dataclass
class PairResult:
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # variant -> metric -> values over α
    barriers: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> {train/test loss/error}
    distance: dict[str, float] = field(default_factory=dict)  # method -> ‖θ_a − π(θ_b)‖ (parameters)
    seconds: dict[str, float] = field(default_factory=dict)  # method -> time to find its permutation


def curve_barriers(alphas: np.ndarray, curves: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Entezari barriers of the loss and of the error (1 − accuracy) on train and test."""
    out = {}
    for split in ("train", "test"):
        out[f"{split}_loss"] = barrier(alphas, curves[f"{split}_loss"])
        out[f"{split}_error"] = barrier(alphas, 1.0 - np.asarray(curves[f"{split}_acc"]))
    return out


def analyse_pair(
    build: Callable[[], nn.Module],
    spec: PermutationSpec,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    alphas: Sequence[float],
    evaluate: Evaluate,
    inputs: torch.Tensor,
    methods: Sequence[str] = METHODS,
    repair: bool = True,
    reset: bool = False,
    seed: int = 0,
    max_iter: int = 100,
    param_keys: Sequence[str] | None = None,
    found: Mapping[str, tuple[Perms, float]] | None = None,
) -> PairResult:
    """Curves and barriers of every variant for one pair; ``build()`` gives a fresh model of the architecture.

    ``found``: method -> (permutations, seconds) already computed for this pair (activation matching of a
    whole set at once: ``activation_matching_pairs``); the other methods are matched here."""
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown alignment methods {bad}; valid: {', '.join(METHODS)}")
    grid = np.asarray(alphas, dtype=float)
    keys = list(param_keys) if param_keys is not None else [k for k, v in state_a.items() if v.is_floating_point()]
    ma, mb, scratch = build(), build(), build()
    ma.load_state_dict(state_a)
    mb.load_state_dict(state_b)
    res = PairResult()
    for method in methods:
        t0 = time.perf_counter()
        if found and method in found:
            perms, res.seconds[method] = found[method]
        elif method == "naive":
            perms, res.seconds[method] = identity_perms(spec), time.perf_counter() - t0
        else:
            perms = match(spec, ma, mb, method, inputs, seed=seed, max_iter=max_iter)
            res.seconds[method] = time.perf_counter() - t0
        sb = permute_state(state_b, spec, perms)
        res.distance[method] = state_distance(state_a, sb, keys)
        variants = {method: lambda a, sb=sb: evaluate(interpolate_state(state_a, sb, a), False)}
        if reset:
            variants[f"{method}_reset"] = lambda a, sb=sb: evaluate(interpolate_state(state_a, sb, a), True)
        if repair:
            stats_a = preact_stats(ma, spec, inputs)
            scratch.load_state_dict(sb)
            stats_b = preact_stats(scratch, spec, inputs)

            def repaired(a, sb=sb, stats_b=stats_b, stats_a=stats_a):
                st = repaired_state(scratch, spec, interpolate_state(state_a, sb, a), target_stats(stats_a, stats_b, a), inputs)
                return evaluate(st, False)

            variants[f"{method}_repair"] = repaired
        for name, fn in variants.items():
            rows = [fn(float(a)) for a in grid]
            res.curves[name] = {k: np.array([r[k] for r in rows], dtype=float) for k in CURVES}
            res.barriers[name] = curve_barriers(grid, res.curves[name])
    return res
