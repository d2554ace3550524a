"""What lsx puts into W&B: one run per job, named by its swept values, built from the job's files.

Why from the files: the results files are the source of truth (a cached job has nothing else),
so a job logs the same run whether it computed its results now or re-logs stored ones
(``logger.relog=true``). An analysis job's optima are trained without a W&B logger; their
learning curves go into the job's run as tables, so a job is one W&B run, not 1 + #optima.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .aggregate import axis_overrides
from .wandb_setup import finish, wandb_mode

log = logging.getLogger("lsx.wandb")

MAX_TABLE_ROWS = 50_000  # a data file larger than this is in the artifact, not in a table
MAX_ARTIFACT_FILE_MB = 20.0


# ------------------------------------------------------------------ names and tags
def run_name(job: str, overrides: Iterable[str], seed: Any = None) -> str:
    """``tunnel_width-lr=0.001-seed=1``: the job and its swept values (short keys unless two collide)."""
    pairs = axis_overrides(overrides)
    leaves = [k.rsplit(".", 1)[-1] for k, _ in pairs]
    parts = [f"{leaf if leaves.count(leaf) == 1 else k}={v}" for (k, v), leaf in zip(pairs, leaves)]
    if seed is not None and not any(k == "seed" for k, _ in pairs):
        parts.append(f"seed={seed}")
    return "-".join([job, *parts])


def run_tags(experiment: str | None, overrides: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """The experiment and the swept keys (W&B filters runs by tag), then the user's tags."""
    tags = [experiment or "default"] + [k for k, _ in axis_overrides(overrides) if k != "seed"] + list(extra)
    return list(dict.fromkeys(t[:64] for t in tags))


def run_identity(c: dict[str, Any], job: str) -> dict[str, Any]:
    """name, group, tags, project, entity, mode of the W&B run of the job configured by ``c``."""
    lc = c.get("logger") or {}
    overrides = c.get("_overrides") or []
    experiment = c.get("experiment_name", "default")
    return dict(
        project=lc.get("project") or "lsx",
        entity=lc.get("entity"),
        group=lc.get("group") or experiment,
        name=run_name(job, overrides, c.get("seed")),
        tags=run_tags(experiment, overrides, lc.get("tags") or []),
        mode=wandb_mode(lc.get("mode")),
    )


# ------------------------------------------------------------------ tables from files
def learning_curve_rows(metrics_csv: Path) -> tuple[list[str], list[list[float]]]:
    with open(metrics_csv) as fh:
        rows = list(csv.DictReader(fh))
    cols = list(rows[0]) if rows else []
    return cols, [[_number(r.get(k)) for k in cols] for r in rows]


def _number(v: Any) -> Any:
    """A table cell: numbers as numbers (W&B plots only numeric columns), blanks as None."""
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return (int(v) if isinstance(v, (int, np.integer)) else f) if math.isfinite(f) else None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return (int(f) if str(v).lstrip("-").isdigit() else f) if math.isfinite(f) else None


def data_tables(path: Path) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Tables of one data file: an .h5 store gives (coordinates, per-point metrics) — the grid;
    an .npz gives one table per length of its 1D numeric arrays (a curve and its x side by side)."""
    out: dict[str, tuple[list[str], list[list[Any]]]] = {}
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as f:
            if "coords" not in f or "metrics" not in f:
                return out
            coords = np.asarray(f["coords"])
            if coords.ndim == 1:
                coords = coords[:, None]
            names = json.loads(f["coords"].attrs.get("axis_names", "[]") or "[]")
            if len(names) != coords.shape[1]:
                names = (
                    ["alpha", "beta", "gamma"][: coords.shape[1]]
                    if coords.shape[1] <= 3
                    else [f"c{i}" for i in range(coords.shape[1])]
                )
            metrics = {k: np.asarray(v) for k, v in f["metrics"].items() if np.asarray(v).shape[:1] == coords.shape[:1]}
            if len(coords) <= MAX_TABLE_ROWS and metrics:
                cols = list(names) + list(metrics)
                data = [[_number(x) for x in coords[i]] + [_number(m[i]) for m in metrics.values()] for i in range(len(coords))]
                out[path.stem] = (cols, data)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            by_len: dict[int, dict[str, np.ndarray]] = {}
            for k in z.files:
                a = z[k]
                if a.ndim == 1 and a.dtype.kind in "fiub" and 0 < len(a) <= MAX_TABLE_ROWS:
                    by_len.setdefault(len(a), {})[k] = a
            main = max(by_len, key=lambda n: (len(by_len[n]), n)) if by_len else None
            for n, arrays in sorted(by_len.items()):
                name = path.stem if n == main else f"{path.stem}_{n}"  # the curve with most columns keeps the name
                out[name] = (list(arrays), [[_number(a[i]) for a in arrays.values()] for i in range(n)])
    return out


def _curve_tables(metrics: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """List-valued metrics as tables: numbers (per-direction widths, eigenvalues, ...) as (index, value);
    records (``permutation_barrier``'s per-pair rows, ...) as a column per key, in first-seen order, a nested
    value (a pair's seeds) as its JSON text and a key a record lacks as None (at most ``MAX_TABLE_ROWS`` records)."""
    out = {}
    for k, v in metrics.items():
        if not isinstance(v, list) or not v:
            continue
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            out[k] = (["index", k], [[i, _number(x)] for i, x in enumerate(v)])
        elif len(v) <= MAX_TABLE_ROWS and all(isinstance(x, dict) for x in v):
            cols = list(dict.fromkeys(c for rec in v for c in rec))
            columns = [_one_type([_cell(rec.get(c)) for rec in v]) for c in cols]
            out[k] = (cols, [list(row) for row in zip(*columns)])
    return out


def _one_type(column: list[Any]) -> list[Any]:
    """A column as it is when its cells share one kind (number, string or bool; None goes with any), else
    every cell as text: ``wandb.Table`` refuses a column that mixes kinds, and one odd record must not lose
    the job's whole log."""
    kinds = {bool if isinstance(x, bool) else str if isinstance(x, str) else float for x in column if x is not None}
    return column if len(kinds) <= 1 else [None if x is None else str(x) for x in column]


def _cell(v: Any) -> Any:
    """A table cell: a number (non-finite as None), a string or bool as it is, anything nested as JSON text."""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v if isinstance(v, (str, bool)) or v is None else _number(v)


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ------------------------------------------------------------------ interactive figures
def html_panels(job_dir: Path, results: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The job's interactive figures as W&B HTML panels (``interactive/<name>``): its ``.html`` artifacts, or
    for a job stored before those existed, a page built now from its stored files into ``run_dir``."""
    import wandb

    pages = {
        k: job_dir / p
        for k, p in (results.get("artifacts") or {}).items()
        if str(p).endswith(".html") and (job_dir / p).is_file()
    }
    if not pages:
        from lsx.plots.interactive import PAGE_NAME, write_job_page

        try:
            made = write_job_page(job_dir, results.get("job"), metrics=results.get("metrics") or {}, out=run_dir / PAGE_NAME)
        except Exception as err:  # a figure must not cost the run's other logs
            log.warning("no interactive figure for %s: %s: %s", job_dir, type(err).__name__, err)
            made = {}
        pages = {k: run_dir / PAGE_NAME for k in made}
    return {f"interactive/{k}": wandb.Html(str(p), inject=False) for k, p in pages.items()}


# ------------------------------------------------------------------ runs
def _init(identity: dict[str, Any], job_type: str, run_dir: Path, config: dict[str, Any]):
    import wandb

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    kw = dict(identity, job_type=job_type, dir=str(run_dir), config=config, reinit="finish_previous")
    return wandb.init(**{k: v for k, v in kw.items() if v is not None})


def _announce(run: Any, identity: dict[str, Any]) -> None:
    where = getattr(run, "dir", None)
    hint = f"; upload with `wandb sync {Path(where).parent}`" if identity.get("mode") == "offline" and where else ""
    print(f"W&B run {identity['name']} ({identity.get('mode')}){hint}", flush=True)


def _artifact(name: str, kind: str, files: Iterable[tuple[Path, str]], metadata: dict[str, Any]):
    """An artifact of (file, name inside the artifact) pairs; files over the size limit are left out."""
    import re

    import wandb

    art = wandb.Artifact(re.sub(r"[^\w.-]", "_", name)[:120], type=kind, metadata=metadata)
    for f, inside in files:
        if f.exists() and f.stat().st_size <= MAX_ARTIFACT_FILE_MB * 2**20:
            art.add_file(str(f), name=inside)
    return art


def log_job(c: dict[str, Any], run_dir: Path, job_dir: Path, results: dict[str, Any]) -> None:
    """The analysis job's one W&B run: config, scalars (summary), curves and grids (tables),
    figures (images, and interactive HTML panels), its optima's learning curves (tables, linked by training-cache name) and
    results.json/config.yaml/data files as an artifact."""
    import wandb

    job = results["job"]
    ident = run_identity(c, job)
    run = _init(ident, "analysis", run_dir, {k: v for k, v in c.items() if k != "hydra"})
    try:
        metrics = results.get("metrics") or {}
        payload: dict[str, Any] = dict(scalars(metrics))
        tables = _curve_tables(metrics)
        data_files = [job_dir / p for p in (results.get("artifacts") or {}).values() if str(p).endswith((".h5", ".npz"))]
        for f in data_files:
            if f.exists():
                tables.update({f"data/{k}": v for k, v in data_tables(f).items()})
        optima = [Path(t["run_dir"]) for t in results.get("training") or [] if t.get("run_dir")]
        for tr in optima:
            if (tr / "metrics.csv").exists():
                tables[f"optima/{tr.name}/learning_curve"] = learning_curve_rows(tr / "metrics.csv")
            if (tr / "summary.json").exists():
                tm = json.loads((tr / "summary.json").read_text()).get("metrics", {})
                payload.update({f"optima/{tr.name}/{k}": v for k, v in scalars(tm).items()})
        payload.update({k: wandb.Table(columns=cols, data=data) for k, (cols, data) in tables.items()})
        payload.update(
            {
                f"plots/{k}": wandb.Image(str(job_dir / p))
                for k, p in (results.get("artifacts") or {}).items()
                if str(p).endswith(".png") and (job_dir / p).exists()
            }
        )
        payload.update(html_panels(job_dir, results, run_dir))
        run.log(payload)
        run.summary.update(scalars(metrics))
        run.config.update(
            {"optima": [tr.name for tr in optima], "job_dir": str(job_dir), "cached": bool(results.get("cached"))},
            allow_val_change=True,
        )
        files = [(run_dir / "results.json", "results.json"), (run_dir / "config.yaml", "config.yaml")]
        files += [(f, f.name) for f in data_files] + [(tr / "summary.json", f"optima/{tr.name}/summary.json") for tr in optima]
        run.log_artifact(
            _artifact(
                f"{job}-{Path(job_dir).name}",
                "analysis-results",
                files,
                {"job_dir": str(job_dir), "optima": [str(p) for p in optima]},
            )
        )
        _announce(run, ident)
    finally:
        finish()


def relog_training(c: dict[str, Any], run_dir: Path, training_run: Path, results: dict[str, Any]) -> None:
    """A training cache hit under ``logger=wandb``: log the stored run when ``logger.relog`` is set."""
    lc = c.get("logger") or {}
    if lc.get("name") != "wandb":
        return
    if not lc.get("relog", False):
        print("W&B: cached training run, nothing new to log (logger.relog=true logs its stored results)")
        return
    log_training(c, run_dir, training_run, results)


def log_training(c: dict[str, Any], run_dir: Path, training_run: Path, results: dict[str, Any]) -> None:
    """A cached training run's stored results, re-logged (``logger.relog=true``): curve table,
    test/train metrics and its files as an artifact."""
    import wandb

    ident = run_identity(c, "train")
    run = _init(ident, "train", run_dir, {k: v for k, v in c.items() if k != "hydra"})
    try:
        payload: dict[str, Any] = dict(scalars(results.get("metrics") or {}))
        if (training_run / "metrics.csv").exists():
            cols, data = learning_curve_rows(training_run / "metrics.csv")
            payload["learning_curve"] = wandb.Table(columns=cols, data=data)
        run.log(payload)
        run.summary.update(scalars(results.get("metrics") or {}))
        run.log_artifact(
            _artifact(
                f"train-{training_run.name}",
                "training-results",
                [(run_dir / "results.json", "results.json")]
                + [(training_run / n, n) for n in ("config.yaml", "summary.json", "metrics.csv")],
                {"training_run": str(training_run)},
            )
        )
        _announce(run, ident)
    finally:
        finish()


def log_aggregate(
    sweep_dir: Path, rows: list[dict[str, Any]], plots: list[Path], project: str | None = None, entity: str | None = None
) -> None:
    """One run of job_type ``aggregate`` in the jobs' project/entity, grouped by their experiment:
    the summary as a table of typed cells (numbers stay numbers), the constants as config, the figures."""
    import wandb

    from .aggregate import META, constant_columns, summary_columns, swept_keys

    def common(key: str) -> Any:
        vals = {str(r.get(key)) for r in rows if r.get(key) is not None}
        return next(iter(vals)) if len(vals) == 1 else None

    experiment = common("config.experiment_name") or "default"
    ident = dict(
        project=project or common("config.logger.project") or "lsx",
        entity=entity or common("config.logger.entity"),
        group=experiment,
        name=f"aggregate-{Path(sweep_dir).name}",
        tags=[experiment, *swept_keys(rows)],
        mode=wandb_mode(common("config.logger.mode")),
    )
    run = _init(ident, "aggregate", Path(sweep_dir), {"sweep_dir": str(sweep_dir), **constant_columns(rows)})
    try:
        cols = summary_columns(rows)
        table = wandb.Table(
            columns=cols, data=[[_number(r.get(k)) if k not in META[:2] else r.get(k) for k in cols] for r in rows]
        )
        run.log({"summary": table, **{f"plots/{p.stem}": wandb.Image(str(p)) for p in plots}})
        _announce(run, ident)
    finally:
        finish()
