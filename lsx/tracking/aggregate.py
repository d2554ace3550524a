"""Aggregate a finished sweep: read every job's results.json + config.yaml, write summary.csv.

Only the output-contract files are read (never W&B), so any sweep — local, joblib or SLURM —
aggregates the same way, and re-aggregating is cheap and deterministic.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import yaml

from lsx.utils.io import atomic_write_text


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per finished job under ``sweep_dir``: its overrides, config and scalar metrics."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for res_path in sorted(sweep_dir.rglob("results.json")):
        job_dir = res_path.parent
        if not (job_dir / "DONE").exists() or "jobs" in job_dir.parts[len(sweep_dir.parts):]:
            continue
        res = json.loads(res_path.read_text())
        cfg_path = job_dir / "config.yaml"
        cfg = yaml.safe_load(cfg_path.read_text()) if cfg_path.exists() else {}
        row: dict[str, Any] = {"run_dir": str(job_dir.relative_to(sweep_dir)), "job": res.get("job"), "seed": res.get("seed")}
        for o in res.get("overrides", []):
            if "=" in o and not o.startswith(("hydra", "paths", "+sweep")):
                k, v = o.split("=", 1)
                row[f"override.{k.lstrip('+~')}"] = v
        flat_cfg = _flatten({k: v for k, v in cfg.items() if not k.startswith("_")}, "config.")
        row.update({k: v for k, v in flat_cfg.items() if not isinstance(v, list)})
        for k, v in res.get("metrics", {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[f"metrics.{k}"] = v
        rows.append(row)
    if not rows:
        raise ValueError(f"no finished jobs (results.json + DONE) under {sweep_dir}")
    if len(rows) < 2:
        raise ValueError(
            f"the sweep under {sweep_dir} has a single finished job; aggregation needs at least two points "
            "(sweep a hyperparameter with -m, e.g. +sweep=lr)"
        )
    return rows


def swept_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs (the sweep's axes); seeds are replicates, not axes."""
    keys = sorted({k for r in rows for k in r if k.startswith("override.") and k != "override.seed"})
    return [k for k in keys if len({str(r.get(k)) for r in rows}) > 1]


def write_summary(rows: list[dict[str, Any]], path: str | Path) -> Path:
    cols = ["run_dir", "job", "seed"] + sorted({k for r in rows for k in r} - {"run_dir", "job", "seed"})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in cols})
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def group_mean(rows: list[dict[str, Any]], x: str, y: str) -> list[tuple[float, float, float, int]]:
    """(x, mean y, std y, n) over jobs sharing x (e.g. several seeds per learning rate), sorted by x."""
    groups: dict[float, list[float]] = {}
    for r in rows:
        if x in r and y in r and r[y] is not None:
            groups.setdefault(float(r[x]), []).append(float(r[y]))
    out = []
    for xv in sorted(groups):
        ys = [v for v in groups[xv] if math.isfinite(v)]
        if not ys:
            out.append((xv, float("nan"), float("nan"), 0))
            continue
        m = sum(ys) / len(ys)
        sd = (sum((v - m) ** 2 for v in ys) / max(1, len(ys) - 1)) ** 0.5 if len(ys) > 1 else 0.0
        out.append((xv, m, sd, len(ys)))
    return out
