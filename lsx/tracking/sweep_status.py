"""Job status in a sweep: a failed job is recorded, the multirun goes on, the end says what failed.

Why: learning-rate sweeps diverge by design, so one failing job must not end a multirun. Each
job writes ``status.json`` into its run directory (``ok`` or ``failed`` with the reason and the
error type); :class:`SweepStatusCallback` (registered in ``conf/config.yaml``'s
``hydra.callbacks``) runs in the launching process after all jobs — with the basic and the
joblib launcher alike — prints one summary line and exits non-zero when any job failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lsx.utils.io import atomic_write_json

STATUS = "status.json"
OK, FAILED, INCOMPLETE = "ok", "failed", "incomplete"


def write_status(
    run_dir: str | Path, status: str, reason: str | None = None, error_type: str | None = None, detail: str | None = None
) -> Path:
    """Record how a job ended (``detail``: a traceback for unexpected errors)."""
    record: dict[str, Any] = {"status": status}
    if reason is not None:
        record.update(reason=reason, error_type=error_type)
    if detail:
        record["traceback"] = detail
    path = Path(run_dir) / STATUS
    atomic_write_json(path, record)
    return path


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The job's status: its status.json; else ``ok`` when DONE exists (jobs of older versions);
    else ``incomplete`` (killed, or still running)."""
    run_dir = Path(run_dir)
    path = run_dir / STATUS
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            return {"status": INCOMPLETE, "reason": f"unreadable {path}: {err}"}
    if (run_dir / "DONE").exists():
        return {"status": OK}
    return {"status": INCOMPLETE, "reason": "no status.json and no DONE (killed or still running)"}


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """The run directories of a multirun's jobs: every directory holding Hydra's ``.hydra``."""
    sweep_dir = Path(sweep_dir)
    dirs = {p.parent for p in sweep_dir.rglob(".hydra") if p.is_dir()}
    dirs |= {p.parent for p in sweep_dir.rglob(STATUS)}
    # a job's own cache (output_root/jobs/...) may sit inside the sweep when output_root points there
    dirs = {d for d in dirs if "jobs" not in d.parts[len(sweep_dir.parts) :]}
    return sorted(dirs, key=_job_order)


def _job_order(d: Path) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in d.parts)


def summary_line(sweep_dir: str | Path) -> tuple[str, int]:
    """``"5 jobs: 4 ok, 1 failed: <dir> (<reason>)"`` and the number of jobs that did not end ok."""
    sweep_dir = Path(sweep_dir)
    statuses = [(d, read_status(d)) for d in job_dirs(sweep_dir)]
    n_ok = sum(s["status"] == OK for _, s in statuses)
    bad = [(d, s) for d, s in statuses if s["status"] != OK]
    parts = [f"{n_ok} ok"]
    for kind in (FAILED, INCOMPLETE):
        these = [(d, s) for d, s in bad if s["status"] == kind]
        if these:
            listed = "; ".join(f"{_rel(d, sweep_dir)} ({s.get('reason', '?')})" for d, s in these)
            parts.append(f"{len(these)} {kind}: {listed}")
    n = len(statuses)
    return f"{n} job{'s' if n != 1 else ''}: {', '.join(parts)}", len(bad)


def _rel(d: Path, root: Path) -> str:
    try:
        return str(d.relative_to(root)) if d != root else str(d)
    except ValueError:
        return str(d)


def current_run_dir() -> Path | None:
    """This Hydra job's output directory (None outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[misc,assignment]


class SweepStatusCallback(Callback):  # type: ignore[misc]
    """At the end of a multirun: one summary line; exit 1 when a job failed or did not finish."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.exists():
            return
        line, n_bad = summary_line(sweep_dir)
        print(f"lsx: sweep {sweep_dir}: {line}", file=sys.stderr if n_bad else sys.stdout, flush=True)
        if n_bad:
            sys.exit(1)
