"""Shared start-up of the Hydra entry points: scale presets, env, run dir, one clear error line."""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from lsx.cli import resolvers  # noqa: F401  (registers ${lsx_uid:})
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
    scaled = apply_scale(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if scaled is not cfg:
        _save_scaled_hydra_config(scaled, run_dir, HydraConfig.get().output_subdir)
    cfg = scaled
    c = to_container(cfg)
    from lsx.cli.validate import validate_config

    validate_config(c)  # before any cache directory is created or anything trains
    set_threads(c.get("threads"), HydraConfig.get())
    c["_overrides"] = list(HydraConfig.get().overrides.task)
    c["_run_dir"] = str(run_dir)
    return c, run_dir


def set_threads(threads: int | None, hc: Any) -> None:
    """The torch thread count of this job's process: ``threads`` when set, else cores // n_jobs under the
    joblib launcher, else torch's default. The count is recorded in every results file."""
    if threads is None:
        _threads_per_parallel_job(hc)
        return
    import torch

    torch.set_num_threads(int(threads))


def _threads_per_parallel_job(hc: Any) -> None:
    """Under the joblib launcher, give each of the n_jobs parallel jobs cores // n_jobs torch threads
    (n_jobs x all cores oversubscribes the CPU)."""
    from hydra.types import RunMode

    launcher = hc.get("launcher") or {}
    if hc.mode != RunMode.MULTIRUN or "joblib" not in str(launcher.get("_target_", "")).lower():
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_jobs = int(launcher.get("n_jobs") or 1)
    n_jobs = max(1, cores + 1 + n_jobs if n_jobs < 0 else n_jobs)  # joblib: -1 = all cores
    threads = max(1, cores // n_jobs)
    torch.set_num_threads(threads)
    log.info("joblib launcher: %d parallel job(s) on %d core(s), %d torch thread(s) per job", n_jobs, cores, threads)


def _save_scaled_hydra_config(cfg: DictConfig, run_dir: Path, subdir: str | None) -> None:
    """Hydra saved ``.hydra/config.yaml`` before the scale preset was applied: replace it with the
    config this job really runs, so the provenance Hydra users read is true."""
    if not subdir:
        return
    from lsx.utils.io import atomic_write_text

    job_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    atomic_write_text(run_dir / subdir / "config.yaml", OmegaConf.to_yaml(job_cfg))


def _input_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input or a known failure (one line, no traceback)."""
    from lsx.data import DatasetUnavailable
    from lsx.training.checkpoints import CheckpointError
    from lsx.training.module import NonFiniteLossError
    from lsx.training.runner import DivergedError

    return (ValueError, DatasetUnavailable, CheckpointError, NonFiniteLossError, DivergedError, KeyError)


def clean_errors(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Bad input → one clear line on stderr and exit 2 (set LSX_DEBUG=1 for the traceback).

    Every job records how it ended in its run directory's status.json. In a multirun a failed
    job does not exit: the remaining jobs run, and :class:`lsx.tracking.sweep_status.SweepStatusCallback`
    reports the failures and exits non-zero at the end.
    """

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        import traceback

        from lsx.tracking.sweep_status import FAILED, OK, current_run_dir, in_multirun, write_status

        run_dir, multirun = current_run_dir(), in_multirun()
        try:
            out = fn(cfg)
        except _input_errors() as err:  # evaluated only when something is raised: a cache hit never loads Lightning
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
        except Exception as err:  # a full/read-only disk is one line; anything else is a bug: the traceback is kept
            disk = os_error_message(err) if isinstance(err, (OSError, RuntimeError)) else None
            if run_dir is not None:
                try:
                    write_status(
                        run_dir,
                        FAILED,
                        disk or f"{type(err).__name__}: {err}".splitlines()[0],
                        type(err).__name__,
                        None if disk else traceback.format_exc(),
                    )
                except OSError:
                    pass  # the disk that failed the job may refuse the status file too
            if not multirun:
                if disk:
                    exit_on_disk_error(err)
                raise
            if disk:
                print(f"lsx: error: {disk} (job {run_dir})", file=sys.stderr, flush=True)
            else:
                log.exception("job %s failed", run_dir)
            return None
        if run_dir is not None:
            write_status(run_dir, OK)
        return out

    return wrapper


_DISK_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "not permitted",
    errno.EROFS: "the file system is read-only",
}


def exit_on_disk_error(err: BaseException) -> None:
    """A full, read-only or forbidden disk: one line and exit 2; returns for any other error.

    On a full disk the process leaves through ``os._exit``: h5py's finalizers crash the
    interpreter at shutdown after a failed write (a segfault after the message otherwise).
    """
    msg = os_error_message(err)
    if msg is None:
        return
    print(f"lsx: error: {msg}", file=sys.stderr)
    if "disk" in msg and ("full" in msg or "quota" in msg):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)
    sys.exit(2)


def os_error_message(err: BaseException) -> str | None:
    """One line for a full, read-only or forbidden disk (also h5py's errors, whose errno is only in
    the text); None for any other error. Writes are atomic, so nothing half-written is left behind."""
    code = getattr(err, "errno", None)
    if code not in _DISK_ERRORS:
        found = re.search(r"errno = (\d+)", str(err))
        code = int(found.group(1)) if found else None
    if code not in _DISK_ERRORS:
        return None
    target = getattr(err, "filename2", None) or getattr(err, "filename", None)  # a copy's destination
    if not target:  # h5py: "... filename = '/x/.surface.h5.tmp', ..."
        found = re.search(r"name = '([^']+)'", str(err))
        target = found.group(1) if found else None
    where = f" {target}" if target else ""
    return (
        f"cannot write{where}: {_DISK_ERRORS[code]} ({os.strerror(code)}); free space or point "
        "paths.output_root / paths.cache_dir (LSX_OUTPUT_DIR / LSX_CACHE_DIR) at a writable place"
    )
