"""W&B that never hangs: offline unless an API key is configured and the mode allows online.

Why: with a key but no network, ``wandb.init`` waits up to 90 s. We pick the mode before
init: an explicit WANDB_MODE wins; otherwise online only with an API key (env or netrc) and a
W&B server that answers a TCP connect within a few seconds.
"""

from __future__ import annotations

import functools
import netrc
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@functools.lru_cache(maxsize=None)
def server_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """Whether the W&B server accepts a TCP connection within ``timeout`` seconds (DNS included:
    the probe runs in a daemon thread, since name resolution ignores socket timeouts). Probed
    once per process: a multirun's jobs would otherwise each wait for it."""
    parsed = urlparse(url or os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    host, port = parsed.hostname or "api.wandb.ai", parsed.port or (80 if parsed.scheme == "http" else 443)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
        return bool(auth and auth[2])
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def quiet() -> None:
    """W&B prints ~57 ``wandb:`` lines per run; lsx prints one line per run instead. An explicit
    WANDB_SILENT (e.g. ``false``) is respected."""
    if not os.environ.get("WANDB_SILENT"):
        os.environ["WANDB_SILENT"] = "true"


def wandb_mode(requested: str | None = None) -> str:
    """``requested`` or WANDB_MODE if set; else online only with an API key and a reachable server.
    (Called before every W&B run lsx opens, so it also quiets W&B's console output.)"""
    quiet()
    if requested:
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if _has_api_key() and server_reachable() else "offline"


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


def announce_offline() -> None:
    """Say where an offline W&B run lies and how to upload it (a training run's logger opens it itself)."""
    import sys

    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None or getattr(getattr(run, "settings", None), "mode", None) != "offline":
        return
    where = Path(run.dir).parent
    print(f"W&B run {run.name} (offline); upload with `wandb sync {where}`", flush=True)
