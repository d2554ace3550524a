"""Shared start-up of the Hydra entry points: scale presets, env, run dir, one clear error line."""
from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from lsx import resolvers  # noqa: F401  (registers ${lsx_uid:})
from lsx.config import apply_scale, to_container

log = logging.getLogger("lsx")


def prepare(cfg: DictConfig) -> tuple[dict[str, Any], Path]:
    """Apply scale presets and return (resolved config dict, this job's run directory)."""
    from hydra.core.hydra_config import HydraConfig

    # Lightning's INFO chatter (device tips, weights_only notes) is printed twice under Hydra
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", message=".*(treespec|on_after_batch_transfer|does not have many workers).*")
    cfg = apply_scale(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    c = to_container(cfg)
    c["_overrides"] = list(HydraConfig.get().overrides.task)
    c["_run_dir"] = str(run_dir)
    return c, run_dir


def clean_errors(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Bad input → one clear line on stderr and exit 2 (set LSX_DEBUG=1 for the traceback)."""

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        if os.environ.get("LSX_DEBUG"):
            return fn(cfg)
        from lsx.data import DatasetUnavailable
        from lsx.training.checkpoints import CheckpointError
        from lsx.training.module import NonFiniteLossError

        try:
            return fn(cfg)
        except (ValueError, DatasetUnavailable, CheckpointError, NonFiniteLossError, KeyError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            print(f"lsx: error: {msg}", file=sys.stderr)
            sys.exit(2)

    return wrapper
