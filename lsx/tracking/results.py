"""The output contract of every job's run directory.

config.yaml (resolved), results.json (job, experiment, seed, code_version, metrics,
artifacts), data files, plots, and a DONE marker written last. A directory with DONE is a
finished job: re-running it is a no-op, and sweep aggregation reads only these files.
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
