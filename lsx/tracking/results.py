"""The output contract of every job's run directory.

config.yaml (resolved), results.json (job, experiment, seed, code_version, metrics,
artifacts, training), data files, plots, and a DONE marker written last. A directory with DONE
is a finished job: re-running it is a no-op, and sweep aggregation reads only these files.

results.json ``training`` has one entry per trained run (optimum) the job used:

- ``seed``, ``run_dir``; ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``: the run's summary.json
  (eval mode with the run's own BN statistics, whole splits);
- ``epochs_run``, ``steps``, ``stopped_by`` (target | max_steps | epochs): how training stopped;
- ``target_train_loss`` (null: none set), ``reached_target`` (true when the stop rule ended the run at the
  target; false when the epoch cap or ``max_steps`` ended it first; null without a target) and
  ``stop_train_loss`` (the stop epoch's running-mean train loss, the number the target is compared with);
- ``analysis_train_loss``: the train loss the analysis itself measured at this optimum, i.e. at the
  checkpoint it used (``analysis_epoch``), in its BN mode (``analysis_bn``: keep | upbn | states) on the
  examples it evaluates (the landscape subset, or its first ``num_examples``); absent when the job
  measured no loss at this run (e.g. a run that only supplies a direction). Matched-training checks
  compare this number: a summary loss with stale BN statistics can differ from it by orders of magnitude.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from lsx.utils.io import atomic_write_json, atomic_write_text
from lsx.utils.version import code_version

DONE = "DONE"
RESULTS = "results.json"
CONFIG = "config.yaml"


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, yaml.safe_dump(config, sort_keys=False))


def write_results(
    run_dir: Path,
    job: str,
    config: dict[str, Any],
    metrics: dict[str, Any],
    artifacts: dict[str, str] | list[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write results.json then the DONE marker (in that order: DONE means complete)."""
    run_dir = Path(run_dir)
    if isinstance(artifacts, list):
        artifacts = {Path(a).stem: a for a in artifacts}
    results = {
        "job": job,
        "experiment": config.get("experiment_name", "default"),
        "seed": config.get("seed"),
        "code_version": code_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "metrics": metrics,
        "artifacts": {k: str(v) for k, v in artifacts.items()},
        "overrides": config.get("_overrides", []),
        "torch_threads": torch_threads(),  # CPU results differ slightly across thread counts
        "torch_version": _torch_version(),
    }
    if extra:
        results.update(extra)
    write_config(run_dir, config)
    atomic_write_json(run_dir / RESULTS, results)
    atomic_write_text(run_dir / DONE, results["finished_at"] + "\n")
    return results


def torch_threads() -> int | None:
    """This process's torch thread count (None when torch is not imported: a job that never needed it)."""
    import sys

    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _torch_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return None


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).exists() and (Path(run_dir) / RESULTS).exists()


def read_results(run_dir: Path) -> dict[str, Any]:
    from lsx.utils.io import read_json  # a damaged file's error names it

    return read_json(Path(run_dir) / RESULTS)


def with_training_outcome(entry: dict[str, Any]) -> dict[str, Any]:
    """A results.json ``training`` entry with ``target_train_loss``/``reached_target``/``stop_train_loss``,
    read from the run's own summary.json and metrics.csv when the entry predates them (a cached job
    computed by older code); unchanged when they are present or the run directory is gone."""
    if "reached_target" in entry or not entry.get("run_dir"):
        return entry
    run_dir = Path(entry["run_dir"])
    try:
        from lsx.utils.io import read_json

        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return entry
    target = ((summary.get("config") or {}).get("training") or {}).get("target_train_loss")
    out = dict(entry)
    for k in ("epochs_run", "stopped_by"):  # a ``lsx.train`` job's results name only the run
        if out.get(k) is None:
            out[k] = summary.get(k)
    out.update(
        target_train_loss=None if target is None else float(target),
        reached_target=None if target is None else out.get("stopped_by") == "target",
    )
    if out.get("stop_train_loss") is None:
        out["stop_train_loss"] = stop_epoch_loss(run_dir, out.get("epochs_run"))
    return out


def stop_epoch_loss(run_dir: Path, epoch: Any) -> float | None:
    """The train loss of a run's epoch ``epoch`` (else its last) in its metrics.csv: the epoch's running mean,
    the number ``training.target_train_loss`` is compared with; None without a learning curve."""
    import csv

    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return None
    with open(path) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    at = [r for r in rows if epoch is not None and r.get("epoch") == str(epoch)] or rows[-1:]
    return float(at[-1]["train/loss"]) if at else None


def missed_target_line(entry: dict[str, Any]) -> str:
    """One line about an optimum that missed its target: run dir, final loss, target, epochs, stop."""
    e = with_training_outcome(entry)
    loss = e.get("stop_train_loss")
    loss = e.get("train_loss") if loss is None else loss
    loss_text = "?" if loss is None else f"{float(loss):.4g}"
    return (
        f"{e.get('run_dir')} (seed {e.get('seed')}) missed training.target_train_loss={e.get('target_train_loss'):g}: "
        f"final epoch's train loss {loss_text} after {e.get('epochs_run')} epochs (stopped by {e.get('stopped_by')})"
    )


def training_entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The optima behind a results.json: its ``training`` entries (analysis jobs), or the one run of a
    ``lsx.train`` job (``training_run``), each with its stop outcome and target (:func:`with_training_outcome`)."""
    entries = list(results.get("training") or [])
    if not entries and results.get("training_run"):
        entries = [{"seed": results.get("seed"), "run_dir": results["training_run"]}]
    return [with_training_outcome(e) for e in entries]
