"""Callbacks that make training runs self-describing and resumable.

- :class:`EpochCheckpoints` writes lightweight lsx checkpoints at the configured epochs
  (epoch 0 is the initialization), atomically.
- :class:`ResumePoint` writes a full Lightning ``resume.ckpt`` on a schedule (every few epochs, at most
  so often), atomically.
- :class:`LearningCurve` keeps per-epoch metrics in ``metrics.csv`` whatever the logger.
- :class:`EpochMetricsBar` is the progress bar, showing the last epoch's metrics.
- :class:`StopRule` ends training at a target train loss or after a number of optimizer steps
  (matched training for comparisons across hyper-parameters).
- :class:`EpochLog` prints one plain line per epoch where a progress bar would flood a log file.
- :class:`DataState` puts the training data's random state (augmentation) into ``resume.ckpt``.
- :class:`SpawnedWorkerExit` closes a spawned DDP worker's process group before the worker exits.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any, Callable

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from lsx.training.checks import check_resume_schedule
from lsx.utils.io import atomic_path, atomic_write_text

from .checkpoints import save_checkpoint

log = logging.getLogger("lsx.training")


def checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}.pt"


def epoch_metrics(pl_module: L.LightningModule) -> dict[str, float]:
    """The last finished epoch's train/val loss and accuracy (``ClassifierModule.epoch_metrics``; the
    module computes them itself instead of through ``self.log``, see lsx.training.module)."""
    return dict(getattr(pl_module, "epoch_metrics", None) or {})


TARGET_ON = ("running", "landscape", "landscape_upbn")
# a landscape target is checked at every epoch end, and every ``check_every`` steps once any check came
# within this factor of the target, or the last two epoch ends' rate of fall projects the next epoch end there:
# the fine checks (one evaluation of the landscape subset each, several optimizer steps' worth of compute) run
# only in the last stretch, where overshooting matters. (Without the projection, a run whose loss fell 30x in
# one epoch, li_fig7's SGD at batch 32, jumped from above the window to far below the target.)
FINE_CHECKS_WITHIN = 4.0


class LandscapeLoss:
    """The train loss an analysis with ``bn`` (keep | upbn) measures at a model: eval mode on the landscape
    train subset, through the same :class:`~lsx.landscape.engine.evaluator.Evaluator` the jobs use (their
    ``analysis_train_loss``). Works on a copy, so the training model, its BatchNorm statistics and every
    random stream are left as they were. A class, not a closure: ``ddp_spawn`` pickles the callbacks."""

    def __init__(self, train: tuple[Any, Any], bn: str, loss_fn: Callable | None = None) -> None:
        self.train, self.bn, self.loss_fn = train, bn, loss_fn

    def __call__(self, model: Any) -> float:
        import copy

        from lsx.landscape.engine.evaluator import train_loss_at
        from lsx.training.runner import channels_last_safe

        twin = copy.deepcopy(model).float().eval()  # the training model keeps its mode, weights and statistics
        x, y = self.train
        device = next(twin.parameters()).device
        return train_loss_at(twin, (x.to(device), y.to(device)), self.bn, self.loss_fn, channels_last=channels_last_safe())


class StopRule(L.Callback):
    """Stop when the train loss is at or below ``target_train_loss``, or right after ``max_steps``
    optimizer steps; ``epochs`` stays the cap.

    ``target_on`` says which loss meets the target. ``running`` (default): the epoch's running mean of the
    training-mode batch losses, checked at each epoch end. ``landscape`` / ``landscape_upbn``: ``measure``
    (the model in eval mode on the landscape train subset, BatchNorm statistics kept / re-estimated there)
    — the loss the analyses measure, so runs compared across hyper-parameters stop at the same loss the
    comparison sees; a dropout net's training-mode loss is several times its eval loss, and a running mean
    over an epoch in which a fast run's loss halves says little about the weights at its end. Checked at
    each epoch end and, with ``check_every``, every ``check_every`` optimizer steps once within
    ``FINE_CHECKS_WITHIN`` × the target (once any check came there, or projected there: :meth:`near_target`), so a run that
    converges fast stops within a few steps of the target instead of an epoch past it.

    The outcome (``epochs_run``, ``steps``, ``stopped_by``: target | max_steps | epochs, ``stop_loss``: the
    last loss compared with the target) survives a resume through the Lightning checkpoint. Must precede
    :class:`EpochCheckpoints` (which saves the stop epoch).
    """

    def __init__(
        self,
        target_train_loss: float | None,
        max_steps: int | None,
        epochs: int,
        target_on: str | None = None,
        check_every: int | None = None,
        measure: Callable[[Any], float] | None = None,
    ) -> None:
        if target_train_loss is not None and not float(target_train_loss) > 0:
            raise ValueError(f"training.target_train_loss must be > 0 or null, got {target_train_loss}")
        if max_steps is not None and int(max_steps) < 1:
            raise ValueError(f"training.max_steps must be >= 1 or null, got {max_steps}")
        target_on = target_on or "running"
        if target_on not in TARGET_ON:
            raise ValueError(f"training.target_on must be one of {', '.join(TARGET_ON)} (or null), got {target_on!r}")
        if check_every is not None and (isinstance(check_every, bool) or int(check_every) < 1):
            raise ValueError(f"training.target_check_every must be >= 1 optimizer steps or null, got {check_every!r}")
        if check_every is not None and target_on == "running":
            raise ValueError(
                "training.target_check_every needs training.target_on=landscape or landscape_upbn "
                "(the running loss is an epoch's mean, known only at the epoch end)"
            )
        if target_on != "running" and measure is None:
            raise ValueError(f"training.target_on={target_on} needs a measure of the landscape loss")
        self.target = None if target_train_loss is None else float(target_train_loss)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.epochs = int(epochs)
        self.target_on = target_on
        self.check_every = None if check_every is None else int(check_every)
        self.measure = measure
        self.outcome: dict[str, Any] = {"epochs_run": 0, "steps": 0, "stopped_by": None, "stop_loss": None}
        self.epoch_end_losses: list[float] = []  # the last two epoch ends' checks (the fine-check window's projection)
        self.lowest_check: float | None = None  # the lowest loss any check has seen (the window stays open after it)
        self.checked_at: int | None = None  # the optimizer step of the last check (an epoch end right after one reuses it)

    @property
    def stopped_by(self) -> str | None:
        return self.outcome["stopped_by"]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped_by:  # resumed after the stop epoch was saved: nothing left to train
            trainer.should_stop = True

    def _check_target(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.target_on == "running":
            loss = epoch_metrics(pl_module).get("train/loss")
        elif self.checked_at == trainer.global_step:  # the epoch's last step was a fine check: same weights
            loss = self.outcome["stop_loss"]
        else:
            assert self.measure is not None
            loss = self.measure(pl_module.model)
            self.checked_at = int(trainer.global_step)
        self.outcome["stop_loss"] = None if loss is None else float(loss)
        if loss is not None and (self.lowest_check is None or float(loss) < self.lowest_check):
            self.lowest_check = float(loss)
        reached = loss is not None and float(loss) <= self.target  # type: ignore[operator]
        if trainer.strategy.reduce_boolean_decision(reached, all=False):  # every rank stops together
            self.outcome["stopped_by"] = "target"
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.max_steps is not None and trainer.global_step >= self.max_steps:
            trainer.should_stop = True
            self.outcome["stopped_by"] = "max_steps"
        if self.stopped_by is None and self.target is not None and self.check_every is not None:
            if self.near_target() and trainer.global_step % self.check_every == 0:
                self._check_target(trainer, pl_module)

    def near_target(self) -> bool:
        """Whether the fine checks run: any check so far within ``FINE_CHECKS_WITHIN`` × the target, or the next
        epoch end projected there from the last two (their ratio of losses applied once more).

        Any check, not the last: a small-batch SGD run's landscape loss swings several-fold between checks (li_fig7
        at batch 32 ranged 0.005-0.044 within one epoch), so a check above the window after one inside it does not
        mean the run went away; closing the window there let a run fall from 6x the target to 1/4 of it unseen."""
        window = FINE_CHECKS_WITHIN * float(self.target or 0.0)
        if self.lowest_check is not None and self.lowest_check <= window:
            return True
        if len(self.epoch_end_losses) == 2:
            before, at_end = self.epoch_end_losses
            return 0 < at_end < before and at_end * (at_end / before) <= window
        return False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.stopped_by is None and self.target is not None:
            self._check_target(trainer, pl_module)
            if self.outcome["stop_loss"] is not None:
                self.epoch_end_losses = [*self.epoch_end_losses, float(self.outcome["stop_loss"])][-2:]
        if self.stopped_by is None and epoch >= self.epochs:
            self.outcome["stopped_by"] = "epochs"
        self.outcome.update(epochs_run=epoch, steps=int(trainer.global_step))

    def stops_at(self, epoch: int) -> bool:
        return self.stopped_by is not None and self.outcome["epochs_run"] == epoch

    def state_dict(self) -> dict[str, Any]:
        return {**self.outcome, "epoch_end_losses": list(self.epoch_end_losses), "lowest_check": self.lowest_check}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self.epoch_end_losses = [float(v) for v in state.pop("epoch_end_losses", [])]
        lowest = state.pop("lowest_check", None)
        self.lowest_check = None if lowest is None else float(lowest)
        self.outcome.update(state)


class EpochCheckpoints(L.Callback):
    def __init__(
        self,
        run_dir: Path,
        epochs: set[int],
        config: dict[str, Any],
        config_hash: str,
        data_shape: dict,
        code_version: str,
        stop: StopRule | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.epochs = epochs
        self.config = config
        self.config_hash = config_hash
        self.data_shape = data_shape
        self.code_version = code_version
        self.stop = stop

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        if not trainer.is_global_zero:
            return
        metrics = epoch_metrics(pl_module) if epoch else {}
        save_checkpoint(
            self.run_dir / checkpoint_name(epoch),
            pl_module.model,
            self.config,
            self.config_hash,
            epoch,
            self.data_shape,
            metrics,
            self.code_version,
            # a DDP-spawn parent never sees the workers' StopRule: it reads the outcome from here (runner)
            stop=self.stop.outcome if self.stop is not None else None,
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if 0 in self.epochs and trainer.current_epoch == 0 and not (self.run_dir / checkpoint_name(0)).exists():
            self._save(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning 2 runs validation before this hook, so the checkpoint records val metrics too
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs or (self.stop is not None and self.stop.stops_at(epoch)):
            self._save(trainer, pl_module, epoch)


class ResumePoint(L.Callback):
    """Full Lightning state (optimizer, schedule, loops) at the end of some epochs, for resuming.

    A point is written at every ``every``-th epoch (``training.resume_every``; 0 or None: never),
    skipped while the newest saved state is younger than ``min_interval_s`` seconds
    (``training.resume_min_interval_s``; 0: never skipped). The newest saved state is the last point
    this process wrote or, before the first, the start of training (a fresh start, or the point it
    just resumed from). Why: a killed run loses at most about ``min_interval_s`` plus one epoch of
    work, while short runs no longer pay for state they delete at the end (a resume point costs
    ~2 ms on the default config, more on bigger models). With ``keep_final`` (``training.keep_resume``)
    the final epoch always gets one (unless ``every`` is 0), so a kept ``resume.ckpt`` holds the end
    of training. Must follow :class:`StopRule` (which decides whether an epoch is the final one).
    """

    def __init__(
        self,
        path: Path,
        every: int | None = 1,
        min_interval_s: float = 30.0,
        stop: StopRule | None = None,
        keep_final: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_resume_schedule(every, min_interval_s)
        self.path = Path(path)
        self.every = int(every or 0)
        self.min_interval_s = float(min_interval_s)
        self.stop = stop
        self.keep_final = bool(keep_final)
        self.clock = clock
        self.saved_at: float | None = None  # clock() of the newest saved state in this process
        self.written: list[int] = []  # epochs written by this process (tests and logs read it)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.saved_at = self.clock()

    def _due(self, trainer: L.Trainer, epoch: int) -> bool:
        if not self.every:
            return False
        if self.keep_final and self.stop is not None and self.stop.stops_at(epoch):
            return True
        if epoch % self.every:
            return False
        if self.min_interval_s <= 0:
            return True
        fresh = self.saved_at is not None and self.clock() - self.saved_at < self.min_interval_s
        # ranks' clocks differ and save_checkpoint may synchronize: all ranks follow rank 0's decision
        return bool(trainer.strategy.broadcast(not fresh, src=0))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if not self._due(trainer, epoch):
            return
        # save_checkpoint must run on every rank (it may synchronize); only rank 0 writes
        with atomic_path(self.path) as tmp:
            trainer.save_checkpoint(tmp)
        self.saved_at = self.clock()
        self.written.append(epoch)


class LearningCurve(L.Callback):
    """Per-epoch metrics in ``metrics.csv`` whatever the logger.

    The rows travel in the resume state, so a resumed run's curve is the uninterrupted run's. The file is
    rewritten when ``min_interval_s`` seconds have passed since it was last written (a live view of a
    long run) and when training ends: a 0.4 s run writes it once, not once per epoch.
    """

    FIELDS = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "lr")

    def __init__(self, path: Path, min_interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.min_interval_s = float(min_interval_s)
        self.clock = clock
        self.rows: list[dict[str, float]] = []
        self.written_at: float | None = None
        if self.path.exists():  # a resume point from before the rows were part of the resume state
            with open(self.path) as fh:
                self.rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state_dict.get("rows", [])]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.written_at = self.clock()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = epoch_metrics(pl_module)
        row = {
            "epoch": float(trainer.current_epoch + 1),
            **{k: m[k] for k in self.FIELDS[1:-1] if k in m},
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
        }
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if self.written_at is None or self.clock() - self.written_at >= self.min_interval_s:
            self.write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> None:
        self.written_at = self.clock()
        if not trainer.is_global_zero:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.FIELDS)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if k not in r else (int(r[k]) if k == "epoch" else r[k])) for k in self.FIELDS})
        atomic_write_text(self.path, buf.getvalue())


class DataState(L.Callback):
    """The training dataset's ``state_dict`` (the augmentation's random stream) in the resume state.

    Why a callback: the runner hands Lightning a train loader, not the datamodule, so the datamodule's own
    checkpoint hooks never run. A dataset without state (no augmentation) saves nothing.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def state_dict(self) -> dict[str, Any]:
        return dict(self.dataset.state_dict()) if hasattr(self.dataset, "state_dict") else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict and hasattr(self.dataset, "load_state_dict"):
            self.dataset.load_state_dict(state_dict)


class EpochMetricsBar(TQDMProgressBar):
    """Lightning's progress bar with the last epoch's metrics (they are not logged through ``self.log``)."""

    SHOWN = {"train/loss": "train_loss", "val/loss": "val_loss", "val/acc": "val_acc"}

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        m = epoch_metrics(pl_module)
        return {**super().get_metrics(trainer, pl_module), **{name: f"{m[k]:.4g}" for k, name in self.SHOWN.items() if k in m}}


class EpochLog(L.Callback):
    """One plain log line per epoch (used instead of the progress bar off a terminal)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = int(epochs)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        m = epoch_metrics(pl_module)
        parts = [
            f"{name} {m[key]:.4f}"
            for key, name in (
                ("train/loss", "train loss"),
                ("train/acc", "train acc"),
                ("val/loss", "val loss"),
                ("val/acc", "val acc"),
            )
            if key in m
        ]
        log.info("epoch %d/%d: %s", trainer.current_epoch + 1, self.epochs, ", ".join(parts))


class SpawnedWorkerExit(L.Callback):
    """Close the process group in a ``ddp_spawn``/``ddp_fork`` worker at the end of fit.

    Why: such a worker exits right after ``fit``, and Lightning destroys only NCCL groups at exit. With a
    gloo group still alive at interpreter shutdown, a worker aborted now and then (``terminate called without
    an active exception``, SIGABRT; 2-3 of 12 two-process CPU runs here, with or without lsx's own
    collectives). A barrier first, so no rank leaves while another is still in a collective. Only for
    launchers that spawn workers: under ``torchrun``/SLURM the process (and its group) lives on after fit.
    """

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
