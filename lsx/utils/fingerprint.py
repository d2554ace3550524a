"""Fingerprints of the code a cached result depends on, and what to do when a cache hit's differs.

Why: the training and job caches are keyed by config. After a change that alters results, an old
result would be served silently. Each result therefore records a sha256 of the source files it
depends on — the training code, models and data for a trained model; the numerical core, the job
framework and the job's own module for an analysis, plus the training code (its results are computed
from trained models) — and a hit whose fingerprint differs is stale.
A commit that touches none of those files keeps every cached result valid.

``cache.stale`` says what a stale hit does: ``warn`` (default: reuse it, one warning line),
``recompute`` (what ``lsx.reproduce`` uses, so a report rests on one code version), ``keep`` (reuse
it on purpose, without a warning).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Iterable

log = logging.getLogger("lsx")

STALE_MODES = ("warn", "recompute", "keep")
_PACKAGE = Path(__file__).resolve().parent.parent
TRAINING_SOURCES = ("training", "models", "data")
ANALYSIS_SOURCES = ("landscape", "jobs/base.py", "jobs/landscape_common.py", *TRAINING_SOURCES)


def _files(parts: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        p = _PACKAGE / part
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.is_file() else [])
    return out


@functools.lru_cache(maxsize=None)
def source_fingerprint(parts: tuple[str, ...]) -> str:
    """sha256 (first 16 hex digits) over the relative paths and bytes of the package's source files under ``parts``."""
    h = hashlib.sha256()
    for f in _files(parts):
        h.update(str(f.relative_to(_PACKAGE)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def training_fingerprint() -> str:
    return source_fingerprint(TRAINING_SOURCES)


def job_fingerprint(job_module: str) -> str:
    """The core, the job framework, the training code and the job's module (``lsx.jobs.surface`` → ``jobs/surface.py``)."""
    own = job_module.removeprefix("lsx.").replace(".", os.sep) + ".py"
    return source_fingerprint((*ANALYSIS_SOURCES, own))


def check_stale_mode(mode: object) -> str:
    if mode not in STALE_MODES:
        raise ValueError(f"cache.stale must be one of {', '.join(STALE_MODES)}, got {mode!r}")
    return str(mode)


def needs_recompute(recorded: str | None, current: str, mode: str) -> bool:
    """The ``cache.stale`` rule, without logging: only ``recompute`` recomputes a result of other code
    (a result recorded before fingerprints existed, None, counts as other code)."""
    return mode == "recompute" and recorded != current


def is_stale(recorded: str | None, current: str, mode: str, what: str) -> bool:
    """Whether a cache hit must be recomputed (:func:`needs_recompute`); logs the warning ``warn`` asks for."""
    if recorded == current or mode == "keep":
        return False
    was = recorded or "no fingerprint (older lsx)"
    if mode == "warn":
        log.warning(
            "%s was computed by other code (%s, now %s): reused; cache.stale=recompute recomputes it, "
            "cache.stale=keep silences this",
            what,
            was,
            current,
        )
        return False
    log.warning("%s was computed by other code (%s, now %s): recomputing (cache.stale=recompute)", what, was, current)
    return True


def clear_keeping_lock(directory: Path, lock_name: str = ".lock") -> None:
    """Empty a cache directory for recomputation while its lock (held by the caller) stays valid."""
    import shutil

    for p in Path(directory).iterdir():
        if p.name == lock_name:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
