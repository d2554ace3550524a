"""Apply permutations to a state dict, draw random ones, and compare two states as vectors.

A permutation ``p`` of group P reorders every axis of P: entry i of the result is entry ``p[i]`` of the
input (in blocks for flattened axes), so ``permute_state(θ_b, spec, p)`` puts b's unit ``p[i]`` where a
has its unit i. A network and its permuted state compute the same function.
"""

from __future__ import annotations

from typing import Mapping

import torch

from .spec import Axis, PermutationSpec

Perms = dict[str, torch.Tensor]


def permute_axis(t: torch.Tensor, ax: Axis, perm: torch.Tensor) -> torch.Tensor:
    """``t`` with axis ``ax.axis`` reordered by ``perm`` (blocks of ``ax.block`` entries move together)."""
    if ax.block == 1:
        return t.index_select(ax.axis, perm)
    shape = t.shape
    n = shape[ax.axis] // ax.block
    split = t.reshape(*shape[: ax.axis], n, ax.block, *shape[ax.axis + 1 :])
    return split.index_select(ax.axis, perm).reshape(shape)


def permute_state(
    state: Mapping[str, torch.Tensor], spec: PermutationSpec, perms: Mapping[str, torch.Tensor], skip: str | None = None
) -> dict[str, torch.Tensor]:
    """A new state dict with every group's permutation applied (all groups but ``skip``)."""
    out = dict(state)
    for g, axes in spec.groups.items():
        if g == skip or g not in perms:
            continue
        for ax in axes:
            out[ax.key] = permute_axis(out[ax.key], ax, perms[g])
    return out


def identity_perms(spec: PermutationSpec) -> Perms:
    return {g: torch.arange(n) for g, n in spec.sizes.items()}


def random_perms(spec: PermutationSpec, generator: torch.Generator | None = None) -> Perms:
    return {g: torch.randperm(n, generator=generator) for g, n in spec.sizes.items()}


def compose(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The permutation of applying ``p`` then ``q``: (x[p])[q] = x[p[q]]."""
    return p[q]


def invert(p: torch.Tensor) -> torch.Tensor:
    inv = torch.empty_like(p)
    inv[p] = torch.arange(len(p))
    return inv


def float_keys(state: Mapping[str, torch.Tensor], parameters_only: set[str] | None = None) -> list[str]:
    """Keys of floating tensors (running statistics included; ``num_batches_tracked`` is not)."""
    keys = [k for k, v in state.items() if v.is_floating_point()]
    return [k for k in keys if parameters_only is None or k in parameters_only]


def state_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], keys: list[str]) -> float:
    """‖θ_a − θ_b‖ over ``keys`` (the model's parameters, as the landscape jobs measure distances)."""
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys) ** 0.5)


def interpolate_state(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """(1−α)·θ_a + α·θ_b for floating tensors (running statistics included); others from ``a``."""
    return {k: (torch.lerp(v, b[k].to(v.dtype), float(alpha)) if v.is_floating_point() else v.clone()) for k, v in a.items()}
