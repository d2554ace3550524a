"""What BatchNorm does at a perturbed point: keep θ*'s statistics, re-estimate them, or move them.

- ``keep``: the running statistics of θ* (the original loss-landscape code's default).
- ``upbn``: re-estimate the statistics at every point from a pass over train data ("UpBN",
  Xu et al.) — the loss of the network a practitioner would actually deploy at that point.
- ``states``: the running statistics are part of the flat vector (``FlatParams(include_buffers=True)``),
  so they move with the direction (e.g. interpolate between two checkpoints' statistics).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

BN_POLICIES = ("keep", "upbn", "states")


def check_policy(policy: str) -> str:
    if policy not in BN_POLICIES:
        raise ValueError(f"unknown BN policy {policy!r}; valid: {', '.join(BN_POLICIES)}")
    return policy


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def reestimate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """BN statistics of the current weights: the cumulative average over ``batches`` (exact for one batch
    or equal-sized ones, as the evaluator's chunks are); ends in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean over the batches
    model.train()
    for x in batches:
        model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()
