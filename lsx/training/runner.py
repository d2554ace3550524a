"""Cached, resumable training runs keyed by a hash of the training config.

A run lives in ``<cache_dir>/train/<model>_<data>_s<seed>_<hash>/``: lsx checkpoints at the
configured epochs, ``resume.ckpt`` (full Lightning state), ``metrics.csv`` (learning curve),
``config.yaml`` and ``summary.json``, then ``DONE``. Asking for a finished run returns it
without training; an interrupted one resumes from ``resume.ckpt``; concurrent sweep jobs
asking for the same run wait on a file lock instead of training twice.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import yaml
from omegaconf import DictConfig

from lsx.config import config_hash, to_container, training_config
from lsx.utils.io import atomic_write_json, atomic_write_text, file_lock, read_json
from lsx.utils.version import code_version

from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, model_from_config, model_label

if TYPE_CHECKING:  # Lightning and the data modules load only when a run trains (a cache hit needs neither)
    from lsx.data import TensorDataModule

    from .callbacks import StopRule

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """A finished training run: where it is and what it produced."""

    run_dir: Path
    config_hash: str
    config: dict[str, Any]
    checkpoints: dict[int, Path]
    summary: dict[str, float]
    stop: dict[str, Any] = field(default_factory=dict)  # epochs_run, steps, stopped_by (target | max_steps | epochs)
    torch_threads: int | None = None  # of the process that trained it (a cache hit may run at another count)

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def final_epoch(self) -> int:
        return max(self.checkpoints)

    @property
    def final(self) -> Path:
        return self.checkpoints[self.final_epoch]

    def load(self, epoch: int | None = None) -> Checkpoint:
        epoch = self.final_epoch if epoch is None else epoch
        if epoch not in self.checkpoints:
            stopped = (
                f" (training stopped at epoch {self.stop['epochs_run']} by {self.stop['stopped_by']})"
                if self.stop.get("stopped_by") in ("target", "max_steps")
                else ""
            )
            raise ValueError(
                f"run {self.run_dir.name} has no checkpoint at epoch {epoch}{stopped}; saved: {sorted(self.checkpoints)}"
            )
        return load_checkpoint(self.checkpoints[epoch])

    def learning_curve(self) -> list[dict[str, float]]:
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return []
        with open(path) as fh:
            return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]

    @classmethod
    def from_dir(cls, run_dir: Path) -> "TrainedRun":
        run_dir = Path(run_dir)
        meta = read_json(run_dir / "summary.json")
        if meta.get("diverged"):
            raise DivergedError(f"training run {run_dir} {meta['diverged']} (delete the run directory to retrain it)")
        ckpts = saved_checkpoints(run_dir)
        stop = {k: meta[k] for k in ("epochs_run", "steps", "stopped_by", "stop_loss") if k in meta}
        if not stop and ckpts:  # a run from before the stop rule always ran to training.epochs
            stop = {"epochs_run": max(ckpts), "steps": None, "stopped_by": "epochs"}
        return cls(run_dir, meta["config_hash"], meta["config"], ckpts, meta["metrics"], stop, meta.get("torch_threads"))

    @property
    def target_train_loss(self) -> float | None:
        target = (self.config.get("training") or {}).get("target_train_loss")
        return None if target is None else float(target)

    @property
    def reached_target(self) -> bool | None:
        """Whether the stop rule ended the run at ``training.target_train_loss`` (None: no target set).
        A run stopped by the epoch cap or by ``max_steps`` with a target set missed it."""
        return None if self.target_train_loss is None else self.stop.get("stopped_by") == "target"

    def stop_train_loss(self) -> float | None:
        """The train loss the stop rule last compared with the target: its recorded ``stop_loss`` (the landscape
        loss under ``training.target_on: landscape``), else the stop epoch's running mean (metrics.csv)."""
        from lsx.tracking.results import stop_epoch_loss

        if self.stop.get("stop_loss") is not None:
            return float(self.stop["stop_loss"])
        return stop_epoch_loss(self.run_dir, self.stop.get("epochs_run"))

    def record(self) -> dict[str, Any]:
        """What a job's results.json says about an optimum it used (``training`` entries)."""
        m = self.summary
        return {
            "seed": self.seed,
            "run_dir": str(self.run_dir),
            **{k: m.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
            **{k: self.stop.get(k) for k in ("epochs_run", "steps", "stopped_by")},
            "torch_threads": self.torch_threads,
            "target_train_loss": self.target_train_loss,
            "reached_target": self.reached_target,
            "stop_train_loss": self.stop_train_loss(),
        }


class DivergedError(RuntimeError):
    """A finished run whose loss ended far above where it started: never served as an optimum."""


def saved_checkpoints(run_dir: Path) -> dict[int, Path]:
    """The run's ``epoch_XXXX.pt`` files by epoch, in epoch order."""
    return {int(p.stem.split("_")[1]): p for p in sorted(Path(run_dir).glob("epoch_*.pt"))}


def checkpoint_epochs(training: dict[str, Any]) -> set[int]:
    epochs = int(training["epochs"])
    wanted = {int(e) for e in (training.get("checkpoint_epochs") or [])}
    every = training.get("checkpoint_every")
    if every:
        wanted |= set(range(0, epochs + 1, int(every)))
    bad = sorted(e for e in wanted if e < 0 or e > epochs)
    if bad:
        raise ValueError(f"training.checkpoint_epochs {bad} outside 0..training.epochs={epochs}")
    return wanted | {epochs}


def run_dir_for(cfg: dict[str, Any]) -> tuple[Path, str]:
    tcfg = training_config(cfg)
    h = config_hash(tcfg)
    name = f"{model_label(tcfg['model'])}_{data_label(tcfg['data'])}_s{tcfg['seed']}_{h[:12]}"
    return Path(cfg["paths"]["cache_dir"]) / "train" / name, h


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    with file_lock(run_dir):
        yield


def channels_last_safe(accelerator: str = "cpu") -> bool:
    """Whether channels_last training is safe in this process on ``accelerator``.

    torch 2.13's CPU kernels can abort a channels_last ResNet step at one thread
    (``munmap_chunk(): invalid pointer``, reproduced by a plain torch loop), so a
    single-threaded CPU process (OMP_NUM_THREADS=1, a joblib job) trains in NCHW instead. GPUs are not
    affected: torchrun sets OMP_NUM_THREADS=1, and GPU training under it keeps channels_last.
    """
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return True
    return torch.get_num_threads() > 1


def _verified_cached_run(run_dir: Path) -> TrainedRun:
    """A finished run whose final checkpoint still loads (cheap: one file), or a clear refusal."""
    run = TrainedRun.from_dir(run_dir)
    try:
        if not run.checkpoints:
            raise CheckpointError(f"no epoch_*.pt checkpoint in {run_dir}")
        load_checkpoint(run.final)
    except CheckpointError as err:
        raise CheckpointError(
            f"finished training run {run_dir} is damaged: {err}. Delete {run_dir} and rerun to retrain it"
        ) from None
    return run


def _usable_resume_point(resume: Path) -> int | None:
    """How many epochs ``resume.ckpt`` holds; a damaged one is moved aside (``.corrupt``) with one
    warning and the run restarts cleanly (same seed, same result) instead of failing on every rerun."""
    if not resume.exists():
        return None
    try:
        state = torch.load(resume, map_location="cpu", weights_only=False)
        return int(state["epoch"]) + 1  # saved at the end of 0-based epoch e: e + 1 epochs are done
    except Exception as err:  # truncated by a kill or a full disk, or not a Lightning checkpoint
        aside = resume.with_name(resume.name + ".corrupt")
        os.replace(resume, aside)
        log.warning(
            "%s is unreadable (%s: %s); moved to %s, restarting this run from scratch",
            resume,
            type(err).__name__,
            str(err)[:120],
            aside.name,
        )
        return None


def check_model_fits(model: torch.nn.Module, dm: TensorDataModule, model_name: str, loss_fn=None) -> None:
    """One forward pass on two examples, so a shape mismatch (or a configured loss that is not a finite
    scalar, lsx.training.losses.check_loss) is reported before training."""
    x, y = dm.split("train")
    if loss_fn is not None:
        from .losses import check_loss

        return check_loss(loss_fn, model, (x[:2], y[:2]))
    try:
        with torch.no_grad():
            out = model.eval()(x[:2])
    except RuntimeError as err:
        raise ValueError(f"model {model_name!r} does not fit data {dm.name!r} of shape {tuple(x.shape[1:])}: {err}") from None
    finally:
        model.train()
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"model {model_name!r} returns a {type(out).__name__}, not a logits tensor, which the default loss "
            "(cross-entropy) needs: set loss (e.g. loss=next_token, or loss._target_=<your (model, batch) -> scalar>)"
        )
    if out.shape[-1] != dm.shape.num_classes:
        raise ValueError(f"model {model_name!r} outputs {out.shape[-1]} classes, data {dm.name!r} has {dm.shape.num_classes}")


def build_data(cfg: dict[str, Any]) -> TensorDataModule:
    from lsx.data import build_datamodule

    d = dict(cfg["data"])
    return build_datamodule(d.pop("name", None), **d)


def data_label(data_cfg: dict[str, Any]) -> str:
    """The data's name: ``data.name``, or a ``_target_`` data set's label (lsx.models.target)."""
    from lsx.models.target import is_target, target_label

    return target_label(data_cfg) if is_target(data_cfg) else str(data_cfg["name"])


@torch.inference_mode()
def evaluate_model(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on one split, plainly (NCHW, the model's own graph). The runner
    uses :func:`final_metrics`; this stays for scripts and benchmarks that want the plain version."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        out = model(x[i : i + chunk])
        loss += float(torch.nn.functional.cross_entropy(out, y[i : i + chunk], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + chunk]).sum())
    n = max(1, len(x))
    return {"loss": loss / n, "acc": correct / n}


SPLITS = ("train", "val", "test")
# Lightning strategies whose workers are processes started by fit (they exit when it returns)
SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def final_metrics(
    model: torch.nn.Module, dm: TensorDataModule, channels_last: bool | None = None, loss_fn=None
) -> dict[str, float]:
    """``{split}_loss``/``{split}_acc`` of ``model`` on every non-empty split (``val_fraction: 0`` has no val).

    Through the landscape :class:`~lsx.landscape.engine.evaluator.Evaluator` (inference mode, channels_last,
    cache-sized chunks, one host sync per split); equal to :func:`evaluate_model` up to float rounding. The
    model is put in eval mode and converted to channels_last in place: pass a copy. ``channels_last`` None
    uses it where :func:`channels_last_safe` allows.
    """
    from lsx.landscape.engine.evaluator import Evaluator

    splits = {name: dm.split(name) for name in SPLITS}
    splits = {name: xy for name, xy in splits.items() if len(xy[0])}
    if "train" not in splits:
        raise ValueError(f"data {dm.name!r} has no train examples to evaluate")
    train, test = splits.pop("train"), splits.pop("test", None)
    # fuse=False: the fused graph (trace, fold, probe check) pays off over many landscape points, not in one
    # evaluation (measured: 26 → 16 ms on the default config, 93 → 76 ms on resnet20)
    ev = Evaluator(
        model,
        train,
        test,
        channels_last=channels_last_safe() if channels_last is None else channels_last,
        extra_splits=splits,
        fuse=False,
        loss_fn=loss_fn,
    )
    return ev.evaluate_at(ev.flat.get())


_RECORDERS: list[list[TrainedRun]] = []
_TRAINED_HERE: set[Path] = set()  # run directories this process trained (their later hits log quietly)


@contextlib.contextmanager
def recording_runs() -> Iterator[list[TrainedRun]]:
    """Collect every run that :func:`train` returns inside the block (the optima a job used)."""
    runs: list[TrainedRun] = []
    _RECORDERS.append(runs)
    try:
        yield runs
    finally:
        _RECORDERS.remove(runs)


def train(cfg: DictConfig | dict[str, Any], progress: bool = True) -> TrainedRun:
    """Train (or fetch from the cache, or resume) the run that ``cfg`` describes (under a sharded
    analysis: on rank 0 alone, then the other ranks take the cache hit; see lsx.distributed). Several
    runs: :func:`train_all`, which trains the missing ones in parallel over the ranks."""
    from lsx.distributed import once_on_rank0

    return once_on_rank0(lambda: _train_or_fetch(cfg, progress))


def train_all(cfgs: list[DictConfig | dict[str, Any]], progress: bool = True) -> list[TrainedRun]:
    """:func:`train` for several runs, in order. Under a launched analysis (torchrun, srun) the runs missing from
    the cache are first trained in parallel, one per rank (round robin; each under its run's lock), then every
    rank takes the cache hits. One process: exactly ``[train(c) for c in cfgs]``.

    Why: at paper scale a job's optima take hours each; trained by rank 0 alone, N−1 GPUs would wait for them."""
    from lsx.distributed import group_rank_world, on_every_rank, rank_world

    cs = [to_container(c) if isinstance(c, DictConfig) else c for c in cfgs]
    rank, world = group_rank_world()
    if world > 1:
        missing = _missing_runs(cs) if rank == 0 else None
        alone = rank_world()[1] == 1  # rank 0 runs a job alone: the others wait for work, hand them only real work
        if missing or not alone:
            on_every_rank(_train_share, missing, progress)
    return [train(c, progress) for c in cs]


def _missing_runs(cs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configs whose run is not finished in the cache, one per run directory, in order."""
    seen: set[Path] = set()
    out = []
    for c in cs:
        run_dir, _ = run_dir_for(c)
        if run_dir not in seen and not (run_dir / "DONE").exists():
            seen.add(run_dir)
            out.append(c)
    return out


def _train_share(missing: list[dict[str, Any]], progress: bool) -> None:
    """Every rank of the process group trains its share ``missing[rank::world]``, one process each (the launcher's
    environment hidden); a failure on any rank is raised on every rank after all have finished their share."""
    import torch.distributed as dist

    from lsx.distributed import group_rank_world, single_process_env

    if not missing:
        return
    rank, world = group_rank_world()
    mine = missing[rank::world]
    if mine:
        log.info(
            "rank %d of %d trains %d of the %d missing optima (seeds %s)",
            rank,
            world,
            len(mine),
            len(missing),
            ", ".join(str(c["seed"]) for c in mine),
        )
    failure: Exception | None = None
    try:
        with single_process_env():
            for c in mine:
                _obtain(c, progress and rank == 0)  # one bar at most on a terminal
    except Exception as e:  # raised after the gather: the other ranks must not wait for this one forever
        failure = e
    errors: list[Any] = [None] * world
    dist.all_gather_object(errors, None if failure is None else f"{type(failure).__name__}: {failure}")
    if failure is not None:
        raise failure
    failed = [(r, err) for r, err in enumerate(errors) if err is not None]
    if failed:
        raise RuntimeError("training a missing optimum failed on " + "; ".join(f"rank {r}: {err}" for r, err in failed))


def _train_or_fetch(cfg: DictConfig | dict[str, Any], progress: bool) -> TrainedRun:
    c = to_container(cfg) if isinstance(cfg, DictConfig) else cfg
    run = _obtain(c, progress)
    for runs in _RECORDERS:
        if run is not None and all(r.run_dir != run.run_dir for r in runs):
            runs.append(run)
    return run


def _obtain(c: dict[str, Any], progress: bool) -> TrainedRun:
    """The finished run of ``c``: a cache hit, or trained (or resumed) under the run's lock."""
    run_dir, h = run_dir_for(c)
    from lsx.distributed import secondary_training_rank

    if secondary_training_rank(c.get("trainer") or {}):  # rank 0 holds the lock and waits for this rank in fit
        if (run_dir / "DONE").exists() and not _stale(c, run_dir):
            return _verified_cached_run(run_dir)
        return _train_locked(c, run_dir, h, progress)  # returns None: rank 0 writes the summary
    with _locked(run_dir):
        if (run_dir / "DONE").exists() and _stale(c, run_dir):
            from lsx.utils.fingerprint import clear_keeping_lock

            clear_keeping_lock(run_dir)
        if (run_dir / "DONE").exists():
            # one line per event: a model this process has just trained is no news
            (log.debug if run_dir in _TRAINED_HERE else log.info)("training cache hit: %s", run_dir)
            run = _verified_cached_run(run_dir)
        else:
            log.info(
                "training %s on %s, seed %s (config hash %s) into %s",
                model_label(c["model"]),
                data_label(c["data"]),
                c["seed"],
                h[:12],
                run_dir,
            )
            try:
                from lsx.distributed import check_training_can_relaunch

                check_training_can_relaunch(c.get("trainer") or {})
                run = _train_locked(c, run_dir, h, progress)
                _TRAINED_HERE.add(run_dir)
            except BaseException:
                _remove_if_empty(run_dir)  # under the lock: see its docstring
                raise
    return run


def _stale(c: dict[str, Any], run_dir: Path) -> bool:
    """A finished run trained by other training/model/data code, to be retrained (``cache.stale=recompute``)."""
    from lsx.utils.fingerprint import is_stale, training_fingerprint

    recorded = read_json(run_dir / "summary.json").get("code_fingerprint")
    return is_stale(
        recorded, training_fingerprint(), str((c.get("cache") or {}).get("stale", "warn")), f"trained model {run_dir}"
    )


def stop_rule(training: dict[str, Any], dm: TensorDataModule, loss_fn=None) -> StopRule:
    """The run's :class:`StopRule` from ``training.target_train_loss``/``target_on``/``target_check_every``/
    ``max_steps``; a landscape target measures on the data module's landscape train subset (what jobs measure)."""
    from .callbacks import LandscapeLoss, StopRule

    target_on = training.get("target_on") or "running"
    measure = None
    if target_on in ("landscape", "landscape_upbn"):
        measure = LandscapeLoss(dm.landscape_subset().train, "upbn" if target_on == "landscape_upbn" else "keep", loss_fn)
    return StopRule(
        training.get("target_train_loss"),
        training.get("max_steps"),
        int(training["epochs"]),
        target_on=target_on,
        check_every=training.get("target_check_every"),
        measure=measure,
    )


def _final_checkpoint(run_dir: Path, outcome: dict[str, Any]) -> tuple[Checkpoint, dict[str, Any]]:
    """The stop epoch's checkpoint and the stop rule's outcome, read once.

    ``outcome`` is this process's StopRule's. When that rule did not run the epochs (under ``ddp_spawn`` the
    workers trained and the parent's copy never changes; or a resume point predates the stop rule), the
    newest checkpoint is the stop epoch's (EpochCheckpoints always saves it) and carries the outcome.
    """
    from .callbacks import checkpoint_name

    if outcome["epochs_run"]:
        return load_checkpoint(run_dir / checkpoint_name(outcome["epochs_run"])), outcome
    saved = saved_checkpoints(run_dir)
    if not saved:
        raise CheckpointError(f"training ended without writing a checkpoint into {run_dir}")
    last = max(saved)
    ckpt = load_checkpoint(saved[last])
    if ckpt.stop.get("epochs_run") == last:
        return ckpt, {k: ckpt.stop.get(k) for k in ("epochs_run", "steps", "stopped_by", "stop_loss")}
    return ckpt, {"epochs_run": last, "steps": None, "stopped_by": "epochs"}  # a checkpoint from before the outcome was saved


def _remove_if_empty(run_dir: Path) -> None:
    """A run that failed before its first checkpoint leaves nothing worth keeping (only the lock
    and a config): remove it, so the cache holds no empty directories from bad input.

    Called while the run's lock is held, on purpose: after releasing it, a waiting process may
    already be training into this directory (and this check would delete its work). A waiter that
    was blocked on the deleted lock file notices and locks the new one (:func:`lsx.utils.io.file_lock`).
    """
    if not any(run_dir.glob("epoch_*.pt")) and not (run_dir / "resume.ckpt").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def _train_locked(c: dict[str, Any], run_dir: Path, h: str, progress: bool) -> TrainedRun:
    import lightning as L

    from lsx.distributed import training_devices

    from .callbacks import (
        DataState,
        EpochCheckpoints,
        EpochLog,
        EpochMetricsBar,
        LearningCurve,
        ResumePoint,
        SpawnedWorkerExit,
    )
    from .module import ClassifierModule

    tcfg = training_config(c)
    training = c["training"]
    seed = int(c["seed"])
    L.seed_everything(seed, workers=True, verbose=False)
    dm = build_data(c).prepare()
    dm.set_loader_seed(seed)
    shape = dm.shape
    data_shape = {
        "in_channels": shape.in_channels,
        "height": shape.height,
        "width": shape.width,
        "num_classes": shape.num_classes,
    }
    model = model_from_config(c["model"], data_shape)
    from .losses import build_loss

    loss_fn = build_loss(c.get("loss"))
    check_model_fits(model, dm, model_label(c["model"]), loss_fn)
    channels_last = bool(training.get("channels_last", True))
    if channels_last and not channels_last_safe(str((c.get("trainer") or {}).get("accelerator", "cpu"))):
        log.info(
            "training.channels_last disabled: unsafe with %d torch thread(s) on torch %s",
            torch.get_num_threads(),
            torch.__version__,
        )
        channels_last = False
    module = ClassifierModule(
        model,
        c["optimizer"],
        c["scheduler"],
        int(training["epochs"]),
        channels_last,
        gradient_clip_val=training.get("gradient_clip_val"),
        val=dm.split("val"),
        eval_batch_size=dm.eval_batch_size,
        loss_fn=loss_fn,
    )
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(tcfg, sort_keys=False))

    from lsx.tracking.loggers import build_loggers

    trainer_cfg = dict(c.get("trainer") or {})
    loggers = build_loggers(
        dict(c.get("logger") or {}), run_dir, run_dir.name, tcfg, c, wandb_dir=Path(c["_run_dir"]) if c.get("_run_dir") else None
    )
    resume = run_dir / "resume.ckpt"
    stop = stop_rule(training, dm, loss_fn)
    resume_epoch = _usable_resume_point(resume)
    if resume_epoch is not None:
        log.info("resuming %s after epoch %d of %s (%s)", run_dir.name, resume_epoch, training["epochs"], resume)
    # a progress bar only on a terminal: in log files it floods (plain per-epoch lines instead)
    progress_bar = progress and bool(trainer_cfg.get("progress_bar", True)) and sys.stderr.isatty()
    loader = dm.train_dataloader()  # the train loader alone: the module evaluates the val split itself (lsx.training.module)
    trainer = L.Trainer(
        max_epochs=int(training["epochs"]),
        accelerator=trainer_cfg.get("accelerator", "cpu"),
        devices=training_devices(trainer_cfg),  # this rank's GPU when ranks train optima side by side
        num_nodes=int(trainer_cfg.get("num_nodes", 1)),
        strategy=trainer_cfg.get("strategy", "auto"),
        precision=trainer_cfg.get("precision", "32-true"),
        deterministic=bool(trainer_cfg.get("deterministic", True)),
        logger=loggers or False,
        enable_checkpointing=False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=int(trainer_cfg.get("log_every_n_steps", 10)),
        default_root_dir=str(run_dir),
        callbacks=[
            stop,  # before EpochCheckpoints: it decides whether this epoch is the final one
            EpochCheckpoints(run_dir, checkpoint_epochs(training), tcfg, h, data_shape, code_version(), stop),
            LearningCurve(run_dir / "metrics.csv"),
            ResumePoint(
                resume,
                training.get("resume_every", 1),
                training.get("resume_min_interval_s", 30.0),
                stop,
                keep_final=bool(training.get("keep_resume", False)),
            ),
            EpochMetricsBar() if progress_bar else EpochLog(int(training["epochs"])),
            DataState(loader.dataset),  # the augmentation's random stream, so a resume stays exact
            *([SpawnedWorkerExit()] if str(trainer_cfg.get("strategy", "auto")).startswith(SPAWNING_STRATEGIES) else []),
        ],
    )
    try:
        trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume) if resume.exists() else None)
    finally:
        from lsx.tracking.wandb_setup import announce_offline, finish

        announce_offline()
        finish()
    if not trainer.is_global_zero:
        return None  # type: ignore[return-value]
    # a fresh copy of the final weights, from the file the cache serves (what later jobs will load)
    final, outcome = _final_checkpoint(run_dir, stop.outcome)
    from lsx.utils.fingerprint import training_fingerprint

    metrics = final_metrics(final.build_model(), dm, loss_fn=loss_fn)
    diverged = divergence(metrics.get("train_loss"), run_dir, dm, loss_fn)
    atomic_write_json(
        run_dir / "summary.json",
        {
            "config_hash": h,
            "config": tcfg,
            "metrics": metrics,
            **outcome,
            **({"diverged": diverged} if diverged else {}),
            # CPU results differ slightly across thread counts: record what produced these weights
            "torch_threads": torch.get_num_threads(),
            "channels_last": channels_last,
            "code_fingerprint": training_fingerprint(),
            **_trained_by(trainer_cfg, trainer, int(c["data"]["batch_size"])),
        },
    )
    atomic_write_text(run_dir / "DONE", "done\n")
    if resume.exists() and not training.get("keep_resume", False):
        os.unlink(resume)
    return TrainedRun.from_dir(run_dir)


def _trained_by(trainer_cfg: dict[str, Any], trainer: Any, batch_size: int) -> dict[str, Any]:
    """Precision, world size and effective batch size of the run (summary.json; the key holds the first two
    where they differ from one 32-bit process)."""
    from lsx.config import normalized_precision

    world = int(trainer.world_size)
    return {
        "precision": normalized_precision(trainer_cfg.get("precision", "32-true")),
        "world_size": world,
        "effective_batch_size": world * batch_size,
    }


DIVERGED_FACTOR = 3.0  # a final train loss this many times the initial one (or chance, ln C) is a diverged run


def divergence(final_loss: float | None, run_dir: Path, dm: TensorDataModule, loss_fn=None) -> str | None:
    """Why a finished run counts as diverged (its final train loss not finite, or above DIVERGED_FACTOR ×
    max(initial train loss, ln C)), or None. Why: Adam at a huge LR can end at a finite loss of 1e8 with no
    NaN on the way, and such a run must not be served as an optimum. The initial loss (the epoch-0
    checkpoint on the train split) is evaluated only when the final loss already exceeds the chance bound."""
    if final_loss is None:
        return None
    chance = math.log(max(2, int(dm.shape.num_classes)))
    if math.isfinite(final_loss) and final_loss <= DIVERGED_FACTOR * chance:
        return None
    initial = chance
    first = saved_checkpoints(run_dir).get(0)
    if first is not None:
        initial = max(chance, float(final_metrics(load_checkpoint(first).build_model(), dm, loss_fn=loss_fn)["train_loss"]))
    if math.isfinite(final_loss) and final_loss <= DIVERGED_FACTOR * initial:
        return None
    return (
        f"diverged: final train loss {final_loss:.4g} vs {initial:.4g} at initialization (> {DIVERGED_FACTOR:g}x or "
        "not finite); lower optimizer.lr or add training.gradient_clip_val"
    )
