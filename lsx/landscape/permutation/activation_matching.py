"""Activation matching (Ainsworth et al. 2023, Sec. "matching activations"; Entezari et al. 2022).

For every permutation group, the correlation between a's and b's units over a fixed input set
(summed over every place the group is observed: a residual stream is seen after each block), then
one linear assignment maximizing the total correlation. Groups do not interact: one forward pass of
each network, one assignment per group (``activations.cross_correlation`` says why that is fast).
Many pairs of one set of networks (``activation_matching_pairs``) share each network's forward pass.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .activations import Pair, cross_correlations
from .apply import Perms
from .spec import PermutationSpec, UnsupportedModel


def activation_matching(
    spec: PermutationSpec, model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor, batch_size: int | None = None
) -> Perms:
    """Permutations of b's units that bring ``model_b`` to ``model_a`` (apply with ``permute_state``).

    ``batch_size``: inputs per forward pass (None: the evaluator's automatic chunk size)."""
    return activation_matching_pairs(spec, [model_a, model_b], [(0, 1)], inputs, batch_size)[(0, 1)]


def activation_matching_pairs(
    spec: PermutationSpec,
    models: Sequence[nn.Module],
    pairs: Sequence[Pair],
    inputs: torch.Tensor,
    batch_size: int | None = None,
) -> dict[Pair, Perms]:
    """Per pair (i, j) of indices into ``models``: the permutations bringing ``models[j]`` to ``models[i]``.

    Each network runs one forward pass whatever the number of its pairs; every pair's permutations equal
    ``activation_matching(spec, models[i], models[j], inputs)``."""
    unobserved = [g for g in spec.groups if not spec.observe.get(g)]
    if unobserved:
        raise UnsupportedModel(
            f"groups {unobserved} have no nonlinearity after them to observe; activation matching "
            "needs one (use weight matching)"
        )
    nodes = sorted({n for g in spec.groups for n in spec.observe[g]})
    corrs = cross_correlations(models, pairs, nodes, inputs, batch_size)
    out: dict[Pair, Perms] = {}
    for pair, corr in corrs.items():
        perms: Perms = {}
        for g in spec.groups:
            c = sum(corr[n] for n in spec.observe[g])
            assert isinstance(c, torch.Tensor)  # not the start value 0: every group observes a node (checked above)
            _, col = linear_sum_assignment(c.numpy(), maximize=True)
            perms[g] = torch.as_tensor(col, dtype=torch.long)
        out[pair] = perms
    return out


def activation_matching_timed(
    spec: PermutationSpec,
    models: Sequence[nn.Module],
    pairs: Sequence[Pair],
    inputs: torch.Tensor,
    batch_size: int | None = None,
) -> dict[Pair, tuple[Perms, float]]:
    """``activation_matching_pairs`` with each pair's seconds: an even share of the whole, since one forward
    pass of each network serves all its pairs and no pair has a time of its own."""
    t0 = time.perf_counter()
    found = activation_matching_pairs(spec, models, pairs, inputs, batch_size)
    share = (time.perf_counter() - t0) / max(1, len(found))
    return {pair: (perms, share) for pair, perms in found.items()}
