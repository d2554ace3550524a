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
    """Bad input → one clear line on stderr and exit 2 (set LSX_DEBUG=1 for the traceback).

    Every job records how it ended in its run directory's status.json. In a multirun a failed
    job does not exit: the remaining jobs run, and :class:`lsx.sweep_status.SweepStatusCallback`
    reports the failures and exits non-zero at the end.
    """

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        import traceback

        from lsx.data import DatasetUnavailable
        from lsx.sweep_status import FAILED, OK, current_run_dir, in_multirun, write_status
        from lsx.training.checkpoints import CheckpointError
        from lsx.training.module import NonFiniteLossError

        run_dir, multirun = current_run_dir(), in_multirun()
        try:
            out = fn(cfg)
        except (ValueError, DatasetUnavailable, CheckpointError, NonFiniteLossError, KeyError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            if run_dir is not None:
                write_status(run_dir, FAILED, msg, type(err).__name__)
            if os.environ.get("LSX_DEBUG") and not multirun:
                raise
            if os.environ.get("LSX_DEBUG"):
                traceback.print_exc()
            print(f"lsx: error: {msg}" + (f" (job {run_dir})" if multirun else ""), file=sys.stderr, flush=True)
            if multirun:
                return None
            sys.exit(2)
        except Exception as err:  # a bug, not bad input: the traceback is kept
            if run_dir is not None:
                write_status(run_dir, FAILED, f"{type(err).__name__}: {err}".splitlines()[0], type(err).__name__,
                             traceback.format_exc())
            if not multirun:
                raise
            log.exception("job %s failed", run_dir)
            return None
        if run_dir is not None:
            write_status(run_dir, OK)
        return out

    return wrapper
