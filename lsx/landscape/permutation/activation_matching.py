"""Activation matching (Ainsworth et al. 2023, Sec. "matching activations"; Entezari et al. 2022).

For every permutation group, the correlation between a's and b's units over a fixed input set
(summed over every place the group is observed: a residual stream is seen after each block), then
one linear assignment maximizing the total correlation. Groups do not interact: one forward pass of
each network, one assignment per group (``activations.cross_correlation`` says why that is fast).
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .activations import cross_correlation
from .apply import Perms
from .spec import PermutationSpec, UnsupportedModel


def activation_matching(
    spec: PermutationSpec, model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor, batch_size: int | None = None
) -> Perms:
    """Permutations of b's units that bring ``model_b`` to ``model_a`` (apply with ``permute_state``).

    ``batch_size``: inputs per forward pass (None: the evaluator's automatic chunk size)."""
    unobserved = [g for g in spec.groups if not spec.observe.get(g)]
    if unobserved:
        raise UnsupportedModel(
            f"groups {unobserved} have no nonlinearity after them to observe; activation matching "
            "needs one (use weight matching)"
        )
    nodes = sorted({n for g in spec.groups for n in spec.observe[g]})
    corr = cross_correlation(model_a, model_b, nodes, inputs, batch_size)
    perms: Perms = {}
    for g in spec.groups:
        c = sum(corr[n] for n in spec.observe[g])
        assert isinstance(c, torch.Tensor)  # not the start value 0: every group observes a node (checked above)
        _, col = linear_sum_assignment(c.numpy(), maximize=True)
        perms[g] = torch.as_tensor(col, dtype=torch.long)
    return perms
