"""What BatchNorm does at a perturbed point: keep θ*'s statistics, re-estimate them, or move them.

- ``keep``: the running statistics of θ* (the original loss-landscape code's default).
- ``upbn``: re-estimate the statistics at every point from a pass over train data ("UpBN",
  Xu et al.) — the loss of the network a practitioner would actually deploy at that point.
- ``states``: the running statistics are part of the flat vector (``FlatParams(include_buffers=True)``),
  so they move with the direction (e.g. interpolate between two checkpoints' statistics).

A model without BatchNorm behaves identically under all three.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

BN_POLICIES = ("keep", "upbn", "states")
_BN = nn.modules.batchnorm._BatchNorm


def check_policy(policy: str) -> str:
    if policy not in BN_POLICIES:
        raise ValueError(f"unknown BN policy {policy!r}; valid: {', '.join(BN_POLICIES)}")
    return policy


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
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
