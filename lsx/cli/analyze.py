"""``python -m lsx.analyze analysis=<job> [experiment=...] [scale=cpu]``: run one analysis job.

The job trains what it needs through the training cache, writes its results into a directory
keyed by its config hash (re-running a finished job is a no-op; a killed one resumes), copies
results.json into the Hydra run directory for sweep aggregation, and logs to W&B if enabled.
Launched on several processes (torchrun, srun, submitit tasks) it shards the job's points over them;
rank 0 owns every output (:mod:`lsx.distributed`, docs/scaling.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import hydra
from omegaconf import DictConfig

from lsx.cli.app import clean_errors, prepare
from lsx.config import CONF_DIR

log = logging.getLogger("lsx.analyze")


def run_analysis(c: dict[str, Any], run_dir: Path, progress: bool = True) -> dict[str, Any]:
    from lsx.distributed import alone_on_rank0, from_rank0, rank_world
    from lsx.jobs import registry  # noqa: F401  (declares the jobs)
    from lsx.jobs.base import JOBS, SHARDED, JobContext, job_lock, lazy_job, training_entries
    from lsx.tracking.results import is_done, read_results, write_config, write_results
    from lsx.utils.io import atomic_write_json, atomic_write_text

    if not c.get("analysis"):
        raise ValueError(f"no analysis selected; add analysis=<job>, valid jobs: {', '.join(sorted(JOBS))}")
    name = c["analysis"]["job"]
    fn = lazy_job(name)
    job_dir = job_dir_of(c)
    rank, world = rank_world()
    if rank > 0:  # launched on several ranks: the job directory and run directory are rank 0's
        return _beside_rank0(c, fn, name in SHARDED)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(run_dir, {k: v for k, v in c.items() if k != "hydra"})
    from lsx.utils.fingerprint import clear_keeping_lock, is_stale, job_fingerprint

    fingerprint = job_fingerprint(JOBS[name])
    stale_mode = str((c.get("cache") or {}).get("stale", "warn"))
    with job_lock(job_dir):  # an identical job running elsewhere: wait for it, then read its results
        stored = read_results(job_dir) if is_done(job_dir) else None  # read once: staleness and the cache hit
        if stored is not None and is_stale(stored.get("code_fingerprint"), fingerprint, stale_mode, f"job {job_dir.name}"):
            clear_keeping_lock(job_dir)
            stored = None
        cached = from_rank0(stored is not None)  # one collective: the other ranks learn whether to compute
        if stored is not None:
            log.info("job already finished: %s (no-op)", job_dir)
            results = stored
        else:
            from lsx.training.runner import recording_runs

            t0 = time.time()
            with recording_runs() as runs, _removed_if_left_empty(job_dir):  # runs: for results.json "training"
                ctx = JobContext(_without_wandb(c), job_dir, progress=progress)
                from lsx.jobs.landscape_common import check_param_subset

                if world > 1 and name not in SHARDED:  # the others wait (and train the optima it asks for)
                    with alone_on_rank0(name):
                        check_param_subset(ctx)  # analysis.params/blocks match the model's names: before anything trains
                        out = fn(ctx)
                else:
                    check_param_subset(ctx)
                    out = fn(ctx)
            from lsx.plots.interactive import page_artifact

            out.artifacts.update(page_artifact(job_dir, name, c, out.metrics))  # interactive.html, when the job has a view
            extra = dict(out.extra)
            extra["elapsed_s"] = round(time.time() - t0, 3)
            extra["training"] = training_entries(runs, ctx.analysis_losses)
            extra["code_fingerprint"] = fingerprint
            if ctx.params:  # analysis.params: the parameters the job moved or differentiated
                extra["params"] = ctx.params
            if ctx.inputs:  # checkpoint files given to the job (external ones included), with their sha256
                extra["inputs"] = ctx.inputs
            results = write_results(
                job_dir, name, {k: v for k, v in c.items() if k != "hydra"}, out.metrics, out.artifacts, extra
            )
    # the run directory describes *this* run: a cache hit's stored results carry the overrides
    # of the sweep that computed them, which would misplace this point in aggregation
    results = dict(
        results,
        job_dir=str(job_dir.resolve()),
        overrides=list(c.get("_overrides", [])),
        experiment=c.get("experiment_name", "default"),
        cached=cached,
    )
    atomic_write_json(run_dir / "results.json", results)
    atomic_write_text(run_dir / "DONE", results.get("finished_at", "") + "\n")
    _warn_missed_targets(results)
    _log_wandb(c, run_dir, job_dir, results)
    return from_rank0(results)


@contextmanager
def _removed_if_left_empty(job_dir: Path) -> Iterator[None]:
    """A job that fails before it writes anything (bad input its own code refuses, such as an odd number of
    seeds for disjoint pairs) leaves no empty job directory behind; one with a stage or file keeps it, so
    the rerun resumes from there.

    Used while the job's lock is held, like the training cache's cleanup (``lsx.utils.io.file_lock`` says why)."""
    try:
        yield
    except BaseException:
        if job_dir.is_dir() and all(p.name == ".lock" for p in job_dir.iterdir()):
            shutil.rmtree(job_dir, ignore_errors=True)
        raise


def job_dir_of(c: dict[str, Any]) -> Path:
    """Where the job of the resolved config ``c`` keeps its results (keyed by the config's hash)."""
    from lsx.jobs.base import job_key

    name = c["analysis"]["job"]
    return Path(c["paths"]["output_root"]) / "jobs" / f"{name}_{c.get('experiment_name', 'default')}_{job_key(c)}"


def finished_job_dir(c: dict[str, Any]) -> Path | None:
    """The job directory of ``c`` when it holds finished results that :func:`run_analysis` would reuse under
    ``c``'s ``cache.stale`` mode, else None. Read-only (no lock, no warning): :mod:`lsx.cli.reproduce` uses it to
    send only unfinished points to a launcher."""
    from lsx.jobs import registry  # noqa: F401  (declares the jobs)
    from lsx.jobs.base import JOBS
    from lsx.tracking.results import is_done, read_results
    from lsx.utils.fingerprint import job_fingerprint, needs_recompute

    if not c.get("analysis") or c["analysis"].get("job") not in JOBS:
        return None
    job_dir = job_dir_of(c)
    if not is_done(job_dir):
        return None
    try:
        stored = read_results(job_dir)
    except (OSError, ValueError):  # a damaged file: run_analysis reports it
        return None
    stale_mode = str((c.get("cache") or {}).get("stale", "warn"))
    if needs_recompute(stored.get("code_fingerprint"), job_fingerprint(JOBS[c["analysis"]["job"]]), stale_mode):
        return None
    return job_dir


def _warn_missed_targets(results: dict[str, Any]) -> None:
    """One warning per optimum whose training hit its cap before ``training.target_train_loss``: a
    comparison that uses it is not at matched training (a cached job warns again, on purpose)."""
    from lsx.tracking.results import missed_target_line, training_entries

    for entry in training_entries(results):
        if entry.get("reached_target") is False:
            log.warning("optimum %s", missed_target_line(entry))


def _beside_rank0(c: dict[str, Any], fn, sharded: bool) -> dict[str, Any]:
    """A rank > 0 runs a sharded job's computations in step with rank 0 (its share of the points, the same
    collectives) in a scratch directory deleted afterwards, or waits while rank 0 runs a job that does not
    shard (training its share of the optima rank 0 asks for); returns rank 0's results."""
    import tempfile

    from lsx.distributed import from_rank0, rank_world, serve_rank0
    from lsx.jobs.base import JobContext

    if not from_rank0(None):  # rank 0 found the job unfinished
        if not sharded:
            serve_rank0()
        else:
            with tempfile.TemporaryDirectory(prefix=f"lsx-rank{rank_world()[0]}-") as scratch:
                fn(JobContext(_without_wandb(c), Path(scratch), progress=False))
    return from_rank0(None)


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

    try:
        log_job(c, run_dir, job_dir, results)
    except Exception as err:  # the job's results are written; a W&B problem must not fail it
        log.warning("W&B logging failed (results are in %s): %s: %s", run_dir, type(err).__name__, err)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
@clean_errors
def main(cfg: DictConfig) -> None:
    from lsx import distributed

    rank, _ = distributed.init_from_env()  # torchrun / srun / submitit tasks: shard the job's points (once per process)
    c, run_dir = prepare(cfg)
    distributed.check_single_device_trainer(c.get("trainer") or {})
    res = run_analysis(c, run_dir)
    if rank > 0:
        return
    print(f"{res['job']} finished: {res['job_dir']}")
    print(json.dumps({k: v for k, v in res["metrics"].items() if not isinstance(v, (list, dict))}, indent=1, default=str)[:2000])


def cli() -> None:
    """``python -m lsx.analyze``: checks that must run before Hydra, then the entry point."""
    from lsx.cli.checks import exit_on_unknown_keys

    exit_on_unknown_keys(entry="analyze")
    from lsx.distributed import scratch_run_dir_overrides

    sys.argv += scratch_run_dir_overrides(sys.argv)  # ranks > 0 leave no run directory
    main()
