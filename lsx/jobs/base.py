"""The job framework: a context that gives a job its optima, data and run directory.

A job is a function ``run(ctx) -> JobOutput`` registered under a name. Its directory is keyed
by a hash of the resolved job config (Dora-style): relaunching a finished job is a no-op, and
a killed job resumes inside the same directory: its data store skips finished points, and
long loops store each finished item with :meth:`JobContext.stage`.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from lsx.config import config_hash, hashed_training
from lsx.landscape.engine.memo import Memo

log = logging.getLogger("lsx.jobs")

if TYPE_CHECKING:  # lsx.data imports Lightning: a finished job (cache hit) must not pay for it
    from lsx.data import LandscapeSubset, TensorDataModule


JOBS: dict[str, str] = {}  # name -> module path (imported lazily so one job's deps never slow another)
SHARDED: set[str] = set()  # jobs that spread their work over the ranks of a launch; the others run on rank 0 alone
_FUNCS: dict[str, Callable[["JobContext"], "JobOutput"]] = {}


def register_job(name: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable[["JobContext"], "JobOutput"]) -> Callable:
        _FUNCS[name] = fn
        return fn

    return deco


def declare(name: str, module: str, sharded: bool = False) -> None:
    """Declare job ``name`` in ``module``; ``sharded``: its work is spread over the ranks of a torchrun/SLURM
    launch (points, directions, optima), else it runs on rank 0 alone while the other ranks wait
    (:func:`lsx.distributed.alone_on_rank0`)."""
    JOBS[name] = module
    if sharded:
        SHARDED.add(name)


def _check_job_name(name: str) -> None:
    if name not in JOBS:
        raise ValueError(f"unknown analysis job {name!r}; valid jobs: {', '.join(sorted(JOBS))}")


def get_job(name: str) -> Callable[["JobContext"], "JobOutput"]:
    _check_job_name(name)
    importlib.import_module(JOBS[name])
    return _FUNCS[name]


def lazy_job(name: str) -> Callable[["JobContext"], "JobOutput"]:
    """The job ``name`` (checked now), whose module is imported only when it runs.

    Why: a job module imports its plotting and numerics (matplotlib, scipy: ~0.5 s); a finished job found
    in the cache never needs them, and a relaunched sweep is mostly such no-ops (``make bench-cli``).
    """
    _check_job_name(name)

    def run(ctx: "JobContext") -> "JobOutput":
        return get_job(name)(ctx)

    return run


@dataclass
class JobOutput:
    """What a job returns: scalar metrics and artifact paths relative to the job directory."""

    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# keys that do not change a job's result (where/how it is logged and run)
_NOT_HASHED = (
    "hydra",
    "paths",
    "logger",
    "trainer",
    "_overrides",
    "_run_dir",
    "experiment_name",
    "scales",
    "reproduce",
    "claims",
    "cache",
    "threads",
)


# analysis keys that say how a job runs, not what it computes: not hashed, not checked against stores
RUNTIME_ANALYSIS_KEYS = ("workers", "points_per_pass")  # the store records points_per_pass itself


def hashed_analysis(analysis: dict[str, Any]) -> dict[str, Any]:
    """``analysis`` without the keys that do not change what a job computes: the runtime keys always, and
    ``params``/``blocks``/``k_bottom`` at their defaults (every parameter, no block table, as many smallest
    eigenvalues as largest), so jobs computed before these options existed keep their keys and stores."""
    from lsx.landscape.engine.subset import is_everything

    out = {k: v for k, v in analysis.items() if k not in RUNTIME_ANALYSIS_KEYS}
    params = out.get("params")
    if "params" in out and (
        params is None
        or (
            isinstance(params, dict)
            and set(params) <= {"include", "exclude"}
            and is_everything(params.get("include"), params.get("exclude"))
        )
    ):
        del out["params"]
    if "blocks" in out and out["blocks"] is None:
        del out["blocks"]
    if "k_bottom" in out and out["k_bottom"] == out.get("k"):
        del out["k_bottom"]
    return out


def job_key(cfg: dict[str, Any]) -> str:
    c = {k: v for k, v in cfg.items() if k not in _NOT_HASHED}
    if isinstance(c.get("training"), dict):
        c["training"] = hashed_training(c["training"])
    if isinstance(c.get("analysis"), dict):  # e.g. analysis.workers: how many processes, not what they compute
        c["analysis"] = hashed_analysis(c["analysis"])
    return config_hash(c)[:12]


def job_lock(job_dir: Path):
    """Exclusive lock on a job directory: two identical cold jobs (a relaunched sweep, two shells)
    do not both evaluate; the second waits, then finds the job finished (a no-op)."""
    from lsx.utils.io import file_lock

    return file_lock(job_dir)


class JobContext:
    """Everything a job needs, built lazily from the resolved config."""

    def __init__(self, cfg: dict[str, Any], job_dir: Path, progress: bool = True) -> None:
        self.cfg = cfg
        self.job_dir = Path(job_dir)
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress and sys.stderr.isatty()  # bars flood log files: only on a terminal
        # the surface engine reports off a terminal too, as periodic log lines (lsx.landscape.engine.progress)
        self.point_progress: bool | str = self.progress or ("log" if progress else False)
        self._dm: TensorDataModule | None = None
        self.analysis_losses: dict[str, dict[str, Any]] = {}  # run dir -> what the analysis measured there
        self.inputs: dict[str, dict[str, Any]] = {}  # files the job was given (role → path, sha256): results "inputs"
        self.params: dict[str, Any] | None = None  # the parameter subset the job used (analysis.params): results "params"

    @property
    def analysis(self) -> dict[str, Any]:
        return self.cfg["analysis"]

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])

    # ----------------------------------------------------------------- data
    def datamodule(self) -> TensorDataModule:
        if self._dm is None:
            from lsx.training.runner import build_data

            self._dm = build_data(self.cfg).prepare()
        return self._dm

    def landscape_subset(self) -> LandscapeSubset:
        return self.datamodule().landscape_subset()

    def record_input(self, role: str, info: dict[str, Any]) -> None:
        """Remember a file the job was given (e.g. an external checkpoint and its sha256); also ``inputs.json``."""
        from lsx.utils.io import atomic_write_json

        self.inputs[role] = dict(info)
        atomic_write_json(self.path("inputs.json"), self.inputs)

    def record_params(self, record: dict[str, Any]) -> None:
        """Remember the parameter subset (:meth:`lsx.landscape.engine.subset.ParamSubset.record`) for results.json."""
        self.params = dict(record)

    def loss_fn(self):
        """The configured loss (lsx.training.losses), or None for cross-entropy (the evaluator's fast path)."""
        from lsx.training.losses import build_loss

        return build_loss(self.cfg.get("loss"))

    # ----------------------------------------------------------------- optima
    def training_config(self, **overrides: Any) -> dict[str, Any]:
        """The config of a training run; ``overrides`` replace top-level keys (e.g. seed=3)."""
        c = dict(self.cfg)
        c.update(overrides)
        return c

    def train(self, **overrides: Any):
        """Train (or fetch from the cache) one run; returns a TrainedRun."""
        from lsx.training.runner import train

        return train(self.training_config(**overrides), progress=self.progress)

    def optima(self, seeds: list[int] | None = None) -> list:
        """Independently trained runs, one per seed (default ``optima.seeds``), from the cache."""
        from lsx.training.runner import train_all

        seeds = list(self.cfg["optima"]["seeds"] if seeds is None else seeds)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"optima.seeds has duplicates: {seeds}")
        # under several ranks the missing ones train in parallel, one per rank (lsx.training.runner.train_all)
        return train_all([self.training_config(seed=int(s)) for s in seeds], progress=self.progress)

    def record_analysis_loss(self, checkpoint: Any, train_loss: float, bn: str) -> None:
        """Record the train loss this analysis measured at a trained run's checkpoint, in its BN mode
        (results.json ``training[].analysis_train_loss``: what matched-training checks compare).

        ``checkpoint`` is a :class:`~lsx.training.checkpoints.Checkpoint` of a cached run (an external
        ``center_ckpt`` belongs to no run and is not recorded). A run measured at several epochs keeps the
        latest epoch's value (the optimum; earlier epochs are points on its way there)."""
        run_dir = str(Path(checkpoint.path).parent.resolve())
        old = self.analysis_losses.get(run_dir)
        if old is not None and old["analysis_epoch"] > int(checkpoint.epoch):
            return
        self.analysis_losses[run_dir] = {
            "analysis_train_loss": float(train_loss),
            "analysis_bn": str(bn),
            "analysis_epoch": int(checkpoint.epoch),
        }

    def path(self, name: str) -> Path:
        return self.job_dir / name

    def stage(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per job directory: the result is saved atomically under ``stages/``
        and loaded on a rerun, so a killed job resumes after its last finished stage. A
        :data:`lsx.landscape.engine.memo.Memo` for the core's resumable loops."""
        from lsx.utils.io import atomic_torch_save

        path = self.job_dir / "stages" / f"{key}.pt"
        if self.sharded:  # rank 0's stage on every rank; computed by all (in step), saved by rank 0
            from lsx.distributed import shared_stage

            return shared_stage(path, compute, lambda: torch.load(path, weights_only=False), lambda v: atomic_torch_save(v, path))
        if path.exists():
            try:
                return torch.load(path, weights_only=False)
            except Exception as e:  # a foreign or damaged file: recompute rather than fail
                log.warning("stage %s unreadable (%s); recomputing", path, e)
        value = compute()
        atomic_torch_save(value, path)
        return value

    @property
    def sharded(self) -> bool:
        """Whether this job runs on several ranks (torchrun/SLURM): see :mod:`lsx.distributed`."""
        from lsx.distributed import rank_world

        return rank_world()[1] > 1

    def memo(self, prefix: str) -> Memo:
        """A memo for one resumable loop of the core: its items are stages named ``<prefix><key>``."""
        return lambda key, compute: self.stage(f"{prefix}{key}", compute)

    @staticmethod
    def torch_threads() -> int:
        return torch.get_num_threads()


def training_entries(runs: list, analysis_losses: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """results.json ``training``: each run's record (summary, stop outcome, target) and, where the job
    recorded one (:meth:`JobContext.record_analysis_loss`), the loss the analysis measured there."""
    return [dict(r.record(), **analysis_losses.get(str(Path(r.run_dir).resolve()), {})) for r in runs]
