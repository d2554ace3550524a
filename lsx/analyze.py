"""``python -m lsx.analyze analysis=<job> [experiment=...] [scale=cpu]``: run one analysis job.

The job trains what it needs through the training cache, writes its results into a directory
keyed by its config hash (re-running a finished job is a no-op; a killed one resumes), copies
results.json into the Hydra run directory for sweep aggregation, and logs to W&B if enabled.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from lsx.app import clean_errors, prepare
from lsx.config import CONF_DIR

log = logging.getLogger("lsx.analyze")


def job_dir_for(c: dict[str, Any]) -> Path:
    """Where the job that ``c`` describes lives (keyed by its config hash; as in run_analysis, tested)."""
    from lsx.jobs.base import job_key

    return Path(c["paths"]["output_root"]) / "jobs" / f"{c['analysis']['job']}_{c.get('experiment_name', 'default')}_{job_key(c)}"


def run_analysis(c: dict[str, Any], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    from lsx.jobs import registry  # noqa: F401  (declares the jobs)
    from lsx.jobs.base import JobContext, get_job, job_key, job_lock
    from lsx.tracking.results import is_done, read_results, write_config, write_results
    from lsx.utils.io import atomic_write_json

    if not c.get("analysis"):
        from lsx.jobs.base import JOBS

        raise ValueError(f"no analysis selected; add analysis=<job>, valid jobs: {', '.join(sorted(JOBS))}")
    name = c["analysis"]["job"]
    fn = get_job(name)
    job_dir = Path(c["paths"]["output_root"]) / "jobs" / f"{name}_{c.get('experiment_name', 'default')}_{job_key(c)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, {k: v for k, v in c.items() if k != "hydra"})
    with job_lock(job_dir):  # an identical job running elsewhere: wait for it, then read its results
        cached = is_done(job_dir)
        if cached:
            log.info("job already finished: %s (no-op)", job_dir)
            results = read_results(job_dir)
        else:
            from lsx.training.runner import recording_runs

            t0 = time.time()
            with recording_runs() as runs:  # the optima the job used, for results.json "training"
                out = fn(JobContext(_without_wandb(c), job_dir, progress=progress))
            extra = dict(out.extra)
            extra["elapsed_s"] = round(time.time() - t0, 3)
            extra["training"] = [r.record() for r in runs]
            results = write_results(job_dir, name, {k: v for k, v in c.items() if k != "hydra"}, out.metrics, out.artifacts, extra)
    # the run directory describes *this* run: a cache hit's stored results carry the overrides
    # of the sweep that computed them, which would misplace this point in aggregation
    results = dict(results, job_dir=str(job_dir.resolve()), overrides=list(c.get("_overrides", [])),
                   experiment=c.get("experiment_name", "default"), cached=cached)
    atomic_write_json(run_dir / "results.json", results)
    (run_dir / "DONE").write_text(results.get("finished_at", "") + "\n")
    _log_wandb(c, run_dir, job_dir, results)
    return results


def _without_wandb(c: dict[str, Any]) -> dict[str, Any]:
    """The job's optima train without a W&B logger: their curves go into the job's one W&B run."""
    if (c.get("logger") or {}).get("name") != "wandb":
        return c
    return dict(c, logger={"name": "none"})


def _log_wandb(c: dict[str, Any], run_dir: Path, job_dir: Path, results: dict[str, Any]) -> None:
    """One W&B run per job; a cached job logs its stored results only when ``logger.relog`` is set."""
    lc = c.get("logger") or {}
    if lc.get("name") != "wandb":
        return
    if results.get("cached") and not lc.get("relog", False):
        print("W&B: cached job, nothing new to log (logger.relog=true logs its stored results)")
        return
    from lsx.tracking.wandb_log import log_job

    log_job(c, run_dir, job_dir, results)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
@clean_errors
def main(cfg: DictConfig) -> None:
    c, run_dir = prepare(cfg)
    res = run_analysis(c, run_dir)
    print(f"{res['job']} finished: {res['job_dir']}")
    print(json.dumps({k: v for k, v in res["metrics"].items() if not isinstance(v, (list, dict))}, indent=1, default=str)[:2000])


if __name__ == "__main__":
    from lsx.cli_check import exit_on_unknown_keys

    exit_on_unknown_keys()
    main()
