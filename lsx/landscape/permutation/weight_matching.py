"""Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", Algorithm 1).

Find permutations π of b's hidden units maximizing Σ_layers ⟨W_a, π(W_b)⟩: coordinate descent over
permutation groups in random order; for one group P with the others held fixed the objective is
linear in P, so each step is one linear assignment (``scipy.optimize.linear_sum_assignment``) on
A = Σ_{axes of P} W_a(axis) · π_{−P}(W_b)(axis)ᵀ. Stops when a full sweep improves nothing.
Why written here, not taken from a package: the reference implementations are JAX (git-re-basin) or
tied to hand-written specs per model (rebasin, git-re-basin-pytorch); the step itself is scipy's.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .apply import Perms, identity_perms, permute_axis
from .spec import Axis, PermutationSpec


def _matrix(t: torch.Tensor, ax: Axis) -> torch.Tensor:
    """The axis' units as rows (n_units × everything else), a flattened axis split into its blocks."""
    shape = t.shape
    n = shape[ax.axis] // ax.block
    split = t.reshape(*shape[: ax.axis], n, ax.block, *shape[ax.axis + 1 :])
    return split.movedim(ax.axis, 0).reshape(n, -1)


def _permuted_except(
    state: Mapping[str, torch.Tensor], spec: PermutationSpec, perms: Perms, key: str, group: str, axis: int
) -> torch.Tensor:
    t = state[key]
    for g, ax in spec.axes_of(key):
        if not (g == group and ax.axis == axis):
            t = permute_axis(t, ax, perms[g])
    return t


def weight_matching(
    spec: PermutationSpec,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    max_iter: int = 100,
    seed: int = 0,
    init: Perms | None = None,
) -> Perms:
    """Permutations of b's units that bring ``state_b`` to ``state_a`` (apply with ``permute_state``).

    Which tensors count: the parameters on every axis of the spec — weights, biases, norm-layer affine
    parameters — as in Ainsworth et al.'s specs; running statistics are permuted along with their
    channels but do not enter the objective. Computed in float64.
    """
    a = {k: v.detach().double() for k, v in state_a.items() if v.is_floating_point()}
    b = {k: v.detach().double() for k, v in state_b.items() if v.is_floating_point()}
    for k in a:
        if k in b and a[k].shape != b[k].shape:
            raise ValueError(f"the two states differ in shape at {k}: {tuple(a[k].shape)} vs {tuple(b[k].shape)}")
    perms = {g: p.clone() for g, p in (init or identity_perms(spec)).items()}
    rng = np.random.default_rng(seed)
    names = list(spec.groups)
    for _ in range(int(max_iter)):
        improved = False
        for gi in rng.permutation(len(names)):
            g = names[gi]
            n = spec.sizes[g]
            cost = torch.zeros(n, n, dtype=torch.float64)
            for ax in (x for x in spec.groups[g] if not x.buffer):
                wa = _matrix(a[ax.key], ax)
                wb = _matrix(_permuted_except(b, spec, perms, ax.key, g, ax.axis), ax)
                cost += wa @ wb.T
            c = cost.numpy()
            _, col = linear_sum_assignment(c, maximize=True)
            old = float(c[np.arange(n), perms[g].numpy()].sum())
            new = float(c[np.arange(n), col].sum())
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[g] = torch.as_tensor(col, dtype=torch.long)
                improved = True
        if not improved:
            break
    return perms
