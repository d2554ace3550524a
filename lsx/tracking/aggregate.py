"""Aggregate a finished sweep: read every job's results.json + config.yaml, write summary.csv.

Only the output-contract files are read (never W&B), so any sweep — local, joblib or SLURM —
aggregates the same way, and re-aggregating is cheap and deterministic.

Why the axes come from each job's resolved config, not from its overrides: a job whose swept
key kept its default value has no override for it, yet is a point of the sweep. Overrides only
say *which* keys are axes; the values are read from config.yaml. Failed jobs are rows with
``status=failed`` and their reason; they are never averaged.

Each row also says whether the job's optima reached ``training.target_train_loss`` (``reached_target``:
True, False when any stopped above it, empty without a target) and, in ``missed_target``, which did
not (run dir, final epoch's train loss, target, epochs): a point of a sweep whose models stopped at
the epoch cap is not at matched training.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable

import yaml

from lsx.tracking.results import missed_target_line, training_entries
from lsx.tracking.sweep_status import OK, job_dirs, read_status
from lsx.utils.io import atomic_write_json, atomic_write_text

META = ("run_dir", "job", "seed", "status", "reason", "reached_target")  # always in summary.csv, constant or not
# override keys that select *what* runs (whole groups) or *where and how* (any key below), not an axis
_NOT_AXES = {"analysis", "experiment", "scale", "debug", "sweep"}
_NOT_AXES_BELOW = {"logger", "trainer", "hydra", "paths"}
_NOT_CONFIG = {"paths", "hydra", "scales", "reproduce", "claims"}  # where files go / runbooks: never summary columns


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def axis_overrides(overrides: Any) -> list[tuple[str, str]]:
    """(key, value) of the overrides that set hyper-parameters (``optimizer.lr=0.01``, ``seed=1``),
    not those choosing what runs or where (``analysis=``, ``experiment=``, ``+sweep=``, ``hydra.*``)."""
    pairs = []
    for o in overrides or []:
        if "=" not in str(o):
            continue
        k, v = str(o).split("=", 1)
        k = k.lstrip("+~")
        if k not in _NOT_AXES and k.split(".")[0].split("/")[0] not in _NOT_AXES_BELOW:
            pairs.append((k, v))
    return pairs


def _override_pairs(job_dir: Path, res: dict[str, Any] | None) -> list[tuple[str, str]]:
    """This job's own overrides: results.json's, else Hydra's record (a failed job has no results)."""
    overrides = (res or {}).get("overrides")
    if overrides is None:
        overrides = _load_yaml(job_dir / ".hydra" / "overrides.yaml") or []
    return [(k, v) for k, v in axis_overrides(overrides) if k != "seed"]


def _axis_value(key: str, flat_cfg: dict[str, Any], overrides: dict[str, str]) -> Any:
    """The value of swept ``key`` for one job: its resolved config value (defaults included); a
    config group (``optimizer=sgd``) reads as its ``name``; the override text as a last resort."""
    if key in flat_cfg:
        return flat_cfg[key]
    if f"{key}.name" in flat_cfg:
        return flat_cfg[f"{key}.name"]
    if key in overrides:
        v = yaml.safe_load(overrides[key])
        return v if isinstance(v, (int, float, str, bool)) or v is None else overrides[key]
    return None


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job under ``sweep_dir`` (failed ones included, with status and reason): its
    swept keys' values, its config (``config.*``) and its scalar metrics (``metrics.*``)."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    seen: dict[str, Path] = {}  # the cached job or trained run a row reports: one row each (sweeps can share one)
    for job_dir in job_dirs(sweep_dir):
        status = read_status(job_dir)
        res_path = job_dir / "results.json"
        done = (job_dir / "DONE").exists() and res_path.exists()
        if status["status"] == OK and not done:
            status = {"status": "incomplete", "reason": "status ok but no results.json + DONE"}
        res = None
        if done:
            try:
                res = json.loads(res_path.read_text())
            except (OSError, ValueError) as err:  # one damaged file is a failed row naming it, not a stopped aggregation
                status = {"status": "failed", "reason": f"unreadable {res_path}: {type(err).__name__}: {err}"}
        shared = (res or {}).get("job_dir") or (res or {}).get("training_run")
        if shared and shared in seen:
            continue  # the same computation reached through a second sweep: counted once
        if shared:
            seen[shared] = job_dir
        cfg = _load_yaml(job_dir / "config.yaml") or _load_yaml(job_dir / ".hydra" / "config.yaml") or {}
        cfg = {k: v for k, v in cfg.items() if not str(k).startswith("_") and k not in _NOT_CONFIG}
        flat_cfg = {k: v for k, v in _flatten(cfg).items() if not isinstance(v, list)}
        jobs.append((job_dir, status, res, flat_cfg, dict(_override_pairs(job_dir, res))))
    for d, st, point in never_started(sweep_dir):
        jobs.append((d, st, None, {}, {k: v for k, v in axis_overrides(point) if k != "seed"}))
    if not jobs:
        raise ValueError(f"no finished jobs (results.json + DONE) under {sweep_dir}")
    if len(jobs) < 2:
        raise ValueError(
            f"the sweep under {sweep_dir} has a single finished job; aggregation needs at least two points "
            "(sweep a hyperparameter with -m, e.g. +sweep=lr)"
        )
    axes = sorted({k for *_, ov in jobs for k in ov})
    rows = []
    for job_dir, status, res, flat_cfg, ov in jobs:
        row: dict[str, Any] = {
            "run_dir": str(job_dir.relative_to(sweep_dir)),
            "job": (res or {}).get("job") or flat_cfg.get("analysis.job") or "train",
            "seed": (res or {}).get("seed", flat_cfg.get("seed")),
            "status": status["status"],
            "reason": status.get("reason", ""),
            **_target_columns(res),
        }
        row.update({k: _axis_value(k, flat_cfg, ov) for k in axes})
        row.update({f"config.{k}": v for k, v in flat_cfg.items()})
        for k, v in ((res or {}).get("metrics") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[f"metrics.{k}"] = v
        rows.append(row)
    return rows


def never_started(sweep_dir: Path) -> list[tuple[Path, dict[str, Any], list[str]]]:
    """The jobs a killed multirun never reached: each ``multirun.yaml`` under ``sweep_dir`` names every job of
    its sweep (Hydra's basic sweeper numbers them 0..N-1 in its sweep subdirectories); those without a
    directory become rows too, with their overrides."""
    from lsx.config import sweep_points

    out = []
    for spec_path in sorted(Path(sweep_dir).rglob("multirun.yaml")):
        spec = _load_yaml(spec_path)
        hydra = (spec.get("hydra") or {}) if isinstance(spec, dict) else {}
        task = (hydra.get("overrides") or {}).get("task") or []
        subdir = str((hydra.get("sweep") or {}).get("subdir", ""))
        if "${hydra.job.num}" not in subdir:
            continue
        try:
            points = sweep_points([str(t) for t in task], multirun=True)
        except Exception:  # a sweep syntax this reader does not know: list what exists
            continue
        for num, point in enumerate(points):
            d = spec_path.parent / subdir.replace("${hydra.job.num}", str(num))
            if not d.exists():
                out.append(
                    (d, {"status": "not started", "reason": f"never started (the sweep was stopped): {' '.join(point)}"}, point)
                )
    return out


def _target_columns(res: dict[str, Any] | None) -> dict[str, Any]:
    """``reached_target`` (None without a target) and ``missed_target`` (one line per optimum that missed)."""
    entries = [e for e in training_entries(res or {}) if e.get("reached_target") is not None]
    missed = [e for e in entries if e["reached_target"] is False]
    return {
        "reached_target": (not missed) if entries else None,
        "missed_target": " | ".join(missed_target_line(e) for e in missed),
    }


def missed_target_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The jobs whose optima (one or more) stopped above ``training.target_train_loss``."""
    return [r for r in rows if r.get("reached_target") is False]


def axis_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Every column that names a swept key (varying or not)."""
    return sorted({k for r in rows for k in r if k not in META and not k.startswith(("config.", "metrics."))})


def swept_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Axis keys whose value differs between jobs (the sweep's axes); seeds are replicates, not axes."""
    return [k for k in axis_keys(rows) if len({_text(r.get(k)) for r in rows}) > 1]


def metric_keys(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k for r in rows for k in r if k.startswith("metrics.")})


def resolve_key(key: str, rows: list[dict[str, Any]], kind: str) -> str:
    """Map a ``--x``/``--y`` name to a column (``override.optimizer.lr`` and ``config.optimizer.lr``
    both mean the axis ``optimizer.lr``; ``width_mean`` means ``metrics.width_mean``); an
    unknown name is one error listing the valid ones."""
    cols = {k for r in rows for k in r}
    if kind == "y":
        valid = metric_keys(rows)
        candidates = [key, f"metrics.{key}"]
    else:
        valid = axis_keys(rows) + sorted(k for k in cols if k.startswith("config."))
        bare = key.removeprefix("override.").removeprefix("config.")
        candidates = [bare, f"config.{bare}", key]
    for c in candidates:
        if c in valid:
            return c
    shown = valid if kind == "y" else swept_keys(rows) or axis_keys(rows)
    more = "" if kind == "y" else " (or any config.<key> of the jobs' config.yaml)"
    raise ValueError(f"unknown --{kind} {key!r}; valid: {', '.join(shown) or '(none)'}{more}")


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def constant_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns with one value across all jobs (META excepted; failed jobs have no metrics, so
    they do not count for ``metrics.*``): written once, not per row."""
    cols = {k for r in rows for k in r} - set(META)
    out = {}
    for k in sorted(cols):
        these = [r for r in rows if r.get("status") == OK or not k.startswith("metrics.")]
        values = {_text(r.get(k)) for r in these}
        if these and len(values) == 1:
            out[k] = these[0].get(k)
    return out


def summary_columns(rows: list[dict[str, Any]], keep: Iterable[str] = ()) -> list[str]:
    """run_dir, job, seed, status, reason, then the swept keys, metrics and config keys that vary
    (and the ``keep`` columns, e.g. those asked for with --x/--y, even when constant)."""
    const = {k: v for k, v in constant_columns(rows).items() if k not in set(keep)}
    axes = set(axis_keys(rows))
    varying = sorted({k for r in rows for k in r} - set(META) - set(const))
    # an axis's config.<key> twin repeats the axis column
    varying = [k for k in varying if not (k.startswith("config.") and k.removeprefix("config.") in axes)]
    order = [k for k in varying if k in axes] + [k for k in varying if k.startswith("metrics.")]
    return list(META) + order + [k for k in varying if k not in order]


def write_summary(rows: list[dict[str, Any]], path: str | Path, keep: Iterable[str] = ()) -> Path:
    """summary.csv: run_dir, job, seed, status, reason and the columns that vary; the constant
    ones go to ``summary_constants.json`` beside it (a 69-column CSV hid the few that matter)."""
    path = Path(path)
    cols = summary_columns(rows, keep)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _text(r.get(k)) for k in cols})
    atomic_write_text(path, buf.getvalue())
    atomic_write_json(path.with_name("summary_constants.json"), constant_columns(rows))
    return path


def ok_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == OK]


def failed_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") != OK]


def _as_float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def group_mean(rows: list[dict[str, Any]], x: str, y: str) -> list[tuple[Any, float, float, int]]:
    """(x, mean y, std y, n) over the *successful* jobs sharing x (e.g. several seeds per
    learning rate), sorted by x (numerically when every x is a number). Failed jobs are never
    averaged; a non-finite y counts as missing."""
    groups: dict[str, tuple[Any, list[float]]] = {}
    for r in ok_rows(rows):
        if r.get(x) is None or r.get(y) is None:
            continue
        xv = r[x]
        groups.setdefault(_text(xv), (xv, []))[1].append(float(r[y]))
    numeric = all(_as_float(xv) is not None and not isinstance(xv, bool) for xv, _ in groups.values())
    keys = sorted(groups, key=(lambda k: _as_float(groups[k][0])) if numeric else str)
    out = []
    for k in keys:
        xv, vals = groups[k]
        xv = _as_float(xv) if numeric else xv
        ys = [v for v in vals if math.isfinite(v)]
        if not ys:
            out.append((xv, float("nan"), float("nan"), 0))
            continue
        m = sum(ys) / len(ys)
        sd = (sum((v - m) ** 2 for v in ys) / (len(ys) - 1)) ** 0.5 if len(ys) > 1 else 0.0
        out.append((xv, m, sd, len(ys)))
    return out


def series(rows: list[dict[str, Any]], x: str, y: str, swept: list[str]) -> dict[str, list[tuple[Any, float, float, int]]]:
    """One curve of :func:`group_mean` per combination of the *other* swept keys (a 2-axis grid
    gives one line per value of the second axis; one axis gives one unlabeled line)."""
    others = [k for k in swept if k != x]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = ", ".join(f"{k}={_text(r.get(k))}" for k in others)
        by.setdefault(label, []).append(r)
    return {label: group_mean(rs, x, y) for label, rs in sorted(by.items())}
