"""W&B that never hangs: offline unless an API key is configured and the mode allows online.

Why: with a key but no network, ``wandb.init`` waits up to 90 s. We pick the mode before
init: an explicit WANDB_MODE wins; otherwise online only with an API key (env or netrc).
"""
from __future__ import annotations

import netrc
import os
from typing import Any


def wandb_mode(requested: str | None = None) -> str:
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
        if auth and auth[2]:
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def init_kwargs(cfg: dict[str, Any], name: str, job_type: str, run_dir: str, config: dict[str, Any]) -> dict[str, Any]:
    """Arguments for wandb.init / WandbLogger: one run per job, grouped by experiment."""
    return dict(
        project=cfg.get("project", "lsx"),
        entity=cfg.get("entity"),
        group=cfg.get("group"),
        name=name,
        job_type=job_type,
        dir=run_dir,
        config=config,
        mode=wandb_mode(cfg.get("mode")),
        tags=list(cfg.get("tags") or []),
        reinit="finish_previous",
    )


def finish() -> None:
    """Close the active W&B run (if any) so the next job of a multirun gets its own run."""
    try:
        import wandb
    except ImportError:  # pragma: no cover
        return
    if wandb.run is not None:
        wandb.finish()
