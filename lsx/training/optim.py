"""Optimizers and learning-rate schedules built from config.

Schedules are LambdaLR multipliers stepped once per optimizer step, so constant, step,
cosine and cyclic (snapshot-ensemble) schedules share one code path and resume exactly.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("constant", "step", "cosine", "cyclic")


def build_optimizer(cfg: Any, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``cfg`` has name, lr, weight_decay (L2) and, for SGD, momentum/nesterov; for Adam, betas."""
    name = cfg["name"]
    lr, wd = float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    if lr <= 0:
        raise ValueError(f"optimizer.lr must be > 0, got {lr}")
    if name == "sgd":
        momentum = float(cfg.get("momentum", 0.0))
        nesterov = bool(cfg.get("nesterov", False))
        if nesterov and momentum <= 0:
            raise ValueError("optimizer.nesterov=true needs optimizer.momentum > 0")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    if name in ("adam", "adamw"):
        betas = tuple(cfg.get("betas", (0.9, 0.999)))
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, betas=betas, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}")


def lr_multiplier(cfg: Any, steps_per_epoch: int, total_epochs: int):
    """A function step → multiplier of the base LR for the configured schedule."""
    name = cfg["name"]
    spe = max(1, int(steps_per_epoch))
    if name == "constant":
        return lambda step: 1.0
    if name == "step":
        milestones = sorted(int(m) for m in cfg.get("milestones", []))
        gamma = float(cfg.get("gamma", 0.1))
        return lambda step: gamma ** sum(step // spe >= m for m in milestones)
    if name == "cosine":
        total = max(1, total_epochs * spe)
        floor = float(cfg.get("min_factor", 0.0))
        return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if name == "cyclic":
        cycle = int(cfg["cycle_epochs"])
        if cycle < 1:
            raise ValueError(f"scheduler.cycle_epochs must be >= 1, got {cycle}")
        if cycle > total_epochs:
            raise ValueError(f"scheduler.cycle_epochs={cycle} is longer than training (training.epochs={total_epochs})")
        floor = float(cfg.get("min_factor", 0.01))
        period = cycle * spe

        def cyclic(step: int) -> float:  # cosine from 1 down to floor within each cycle (SGDR / snapshot ensembles)
            t = (step % period) / period
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        return cyclic
    raise ValueError(f"unknown scheduler {name!r}; valid schedulers: {', '.join(SCHEDULERS)}")


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int, total_epochs: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(cfg, steps_per_epoch, total_epochs))
