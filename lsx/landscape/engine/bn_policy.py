"""What BatchNorm does at a perturbed point: keep θ*'s statistics, re-estimate them, or move them.

- ``keep``: the running statistics of θ* (the original loss-landscape code's default).
- ``upbn``: re-estimate the statistics at every point from a pass over train data ("UpBN",
  Xu et al.) — the loss of the network a practitioner would actually deploy at that point.
- ``states``: the running statistics are part of the flat vector (``FlatParams(include_buffers=True)``),
  so they move with the direction (e.g. interpolate between two checkpoints' statistics).

A model without BatchNorm behaves identically under all three.

Extrapolated points (``states`` beyond a path's end points, e.g. Li et al.'s α ∈ [−0.5, 1.5]): the
running variance moves linearly too and can become ≤ 0 there, which has no meaning; dividing by
√(0 + ε) blows every activation up (the loss reached 1e20 with a clamp at 0). Two treatments
(``EXTRAPOLATED_BN``), chosen by the caller:

- ``floor`` (the interpolation job's default): keep the moved statistics but clamp each channel's
  variance to ``fraction`` × the smaller of the two end points' variances for that channel
  (:func:`variance_floors`, default fraction 0.1), a small positive floor on the scale of the layer's
  own statistics; it never binds inside [0, 1], so the curve stays continuous at the end points.
- ``upbn``: re-estimate the statistics at the point from train data (as ``upbn`` above) — the
  network one would deploy at that point.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

BN_POLICIES = ("keep", "upbn", "states")
EXTRAPOLATED_BN = ("upbn", "floor")
DEFAULT_VAR_FLOOR_FRACTION = 0.1
_BN = nn.modules.batchnorm._BatchNorm


def check_policy(policy: str) -> str:
    if policy not in BN_POLICIES:
        raise ValueError(f"unknown BN policy {policy!r}; valid: {', '.join(BN_POLICIES)}")
    return policy


def batchnorm_layers(model: nn.Module) -> list[_BN]:
    return [m for m in model.modules() if isinstance(m, _BN)]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(batchnorm_layers(model))


def uses_buffers(policy: str) -> bool:
    """Whether the policy's flat layout includes the BN running statistics."""
    return check_policy(policy) == "states"


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Replace every BN layer's running statistics by those of the current weights over ``batches``.

    Statistics are reset, then accumulated in train mode under ``no_grad`` with a cumulative average
    (what ``momentum=None`` does), except that each batch is weighted by its size, so the running mean
    is the exact mean over all examples even when the last batch is smaller; the running variance is the
    size-weighted mean of the per-batch (unbiased) variances — the exact variance for a single batch.
    Dropout and the like see train mode during the pass. Ends in eval mode, momenta restored.
    """
    bns = batchnorm_layers(model)
    if not bns:
        model.eval()
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
    model.train()
    seen = 0
    try:
        for x in batches:
            n = int(x.shape[0])
            if n == 0:
                continue
            for m in bns:
                m.momentum = n / (seen + n)  # first batch: 1 (overwrite); then the size-weighted running mean
            model(x)
            seen += n
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    if seen == 0:
        raise ValueError("reestimate_bn got no examples; pass at least one non-empty batch of train inputs")


def bn_state(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    """A copy of every BN layer's buffers (running mean/var and num_batches_tracked)."""
    return [{k: b.detach().clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in batchnorm_layers(model)]


@torch.no_grad()
def load_bn_state(model: nn.Module, state: list[dict[str, torch.Tensor]]) -> None:
    for m, s in zip(batchnorm_layers(model), state):
        for k, b in m.named_buffers(recurse=False):
            if b is not None and k in s:
                b.copy_(s[k])


@contextmanager
def preserved_bn_state(model: nn.Module) -> Iterator[None]:
    """Restore the BN buffers on exit (UpBN overwrites them at every point)."""
    state = bn_state(model)
    try:
        yield
    finally:
        load_bn_state(model, state)


def check_extrapolated_bn(policy: str) -> str:
    if policy not in EXTRAPOLATED_BN:
        raise ValueError(f"unknown treatment of BN at extrapolated points {policy!r}; valid: {', '.join(EXTRAPOLATED_BN)}")
    return policy


def variance_floors(
    state_a: list[dict[str, torch.Tensor]], state_b: list[dict[str, torch.Tensor]], fraction: float = DEFAULT_VAR_FLOOR_FRACTION
) -> list[torch.Tensor | None]:
    """Per layer and channel: ``fraction`` × min(var_a, var_b) of two end points' BN states (:func:`bn_state`)."""
    if not fraction > 0:
        raise ValueError(f"the variance floor fraction must be > 0, got {fraction}")
    if len(state_a) != len(state_b):
        raise ValueError(f"the end points have {len(state_a)} and {len(state_b)} BN layers; not the same architecture")
    out: list[torch.Tensor | None] = []
    for a, b in zip(state_a, state_b):
        va, vb = a.get("running_var"), b.get("running_var")
        out.append(None if va is None or vb is None else fraction * torch.minimum(va, vb).clamp_min(0))
    return out


def _per_layer(floors: float | list[torch.Tensor | None], n: int) -> list[float | torch.Tensor | None]:
    """One floor per BN layer: the given list, or one number repeated."""
    if isinstance(floors, (list, tuple)):
        return list(floors)
    return [floors] * n


@torch.no_grad()
def clamp_running_var(layers: Iterable[_BN], floors: float | list[torch.Tensor | None] = 0.0) -> None:
    """Clamp each BN layer's running variance from below: one number for all, or a per-layer, per-channel floor."""
    layers = list(layers)
    per_layer = _per_layer(floors, len(layers))
    if len(per_layer) != len(layers):
        raise ValueError(f"{len(per_layer)} variance floors for {len(layers)} BN layers")
    for m, f in zip(layers, per_layer):
        if m.running_var is None or f is None:
            continue
        if isinstance(f, torch.Tensor):
            torch.maximum(m.running_var, f.to(m.running_var), out=m.running_var)
        else:
            m.running_var.clamp_(min=float(f))


def floors_by_buffer_name(model: nn.Module, floors: float | list[torch.Tensor | None]) -> dict[str, torch.Tensor | float]:
    """``{"<module>.running_var": floor}`` for every BN layer (for code that moves buffers functionally)."""
    names = [n for n, m in model.named_modules() if isinstance(m, _BN)]
    per_layer = _per_layer(floors, len(names))
    return {f"{n}.running_var" if n else "running_var": (0.0 if f is None else f) for n, f in zip(names, per_layer)}
