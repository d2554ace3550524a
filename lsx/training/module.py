"""The LightningModule: a registry model, cross-entropy, the configured optimizer and schedule.

Lightning runs the loop (devices, DDP, precision, resume state); the module keeps the per-step
work down to what a plain PyTorch loop does, because on small models Lightning's per-step and
per-logged-key machinery is a large share of a run (measured by ``make bench-train``):

- **manual optimization**: one ``zero_grad``/``manual_backward``/``step`` and the schedule stepped
  per optimizer step, instead of the automatic closure and its hooks;
- **epoch metrics computed here, once per epoch**: train loss/accuracy summed per step, and the
  validation split evaluated in inference mode straight from its tensors (sharded over ranks, sums
  all-reduced), instead of Lightning's validation loop and ``self.log``. They land in
  :attr:`ClassifierModule.epoch_metrics` (what lsx's callbacks read) and go to the run's loggers.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from .optim import build_optimizer, build_scheduler


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


EPOCH_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optimizer_cfg: dict[str, Any],
        scheduler_cfg: dict[str, Any],
        epochs: int,
        channels_last: bool = True,
        gradient_clip_val: float | None = None,
        val: tuple[torch.Tensor, torch.Tensor] | None = None,
        eval_batch_size: int = 500,
        loss_fn: Callable[[nn.Module, Any], Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        # channels_last: 1.3-1.4x faster CPU training for conv nets here (make bench-train)
        self.channels_last = channels_last
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.optimizer_cfg = optimizer_cfg
        self.scheduler_cfg = scheduler_cfg
        self.epochs = int(epochs)
        if gradient_clip_val is not None and not float(gradient_clip_val) > 0:
            raise ValueError(f"training.gradient_clip_val must be > 0 or null, got {gradient_clip_val}")
        self.gradient_clip_val = None if gradient_clip_val is None else float(gradient_clip_val)
        self.val_split = val if val is not None and len(val[0]) else None
        self.eval_batch_size = int(eval_batch_size)
        self._val_share: tuple[torch.Tensor, torch.Tensor] | None = None  # this rank's part, on its device
        self._train_sums = torch.zeros(3, dtype=torch.float64)  # loss·n, correct, n of the epoch so far
        self.epoch_metrics: dict[str, float] = {}  # of the last finished epoch (EPOCH_METRICS present)
        # a configured loss (lsx.training.losses): None is cross-entropy on (x, y), computed inline below
        self.loss_fn = loss_fn
        self.skipped_steps = 0  # optimizer steps the AMP scaler skipped (inf/NaN gradients) in this process

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        return self._as_input(x), y

    def on_fit_start(self) -> None:
        if self.val_split is not None:  # moved once, not every epoch
            x, y = self.val_split
            world, rank = self.trainer.world_size, self.trainer.global_rank
            lo, hi = len(x) * rank // world, len(x) * (rank + 1) // world
            self._val_share = (x[lo:hi].to(self.device), y[lo:hi].to(self.device))

    def on_train_epoch_start(self) -> None:
        self._train_sums = torch.zeros(3, dtype=torch.float64, device=self.device)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.loss_fn is None:
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            with torch.no_grad():
                self._train_sums += torch.stack(
                    [
                        loss.detach().double() * len(y),
                        (logits.argmax(1) == y).sum().double(),
                        torch.tensor(float(len(y)), dtype=torch.float64, device=loss.device),
                    ]
                )
        else:
            loss = self._custom_step_sums(batch, len(x))
        if not math.isfinite(float(loss.detach())):
            raise NonFiniteLossError(
                f"training loss became {float(loss.detach())} at epoch {self.current_epoch}, step {self.global_step}; "
                "stopping. The last good checkpoint is kept. Lower optimizer.lr or add training.gradient_clip_val."
            )
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # 16-mixed AMP only (bf16 has none)
        scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
        opt.step()  # Lightning's optimizer: counts global_step, runs the precision plugin (AMP scaler)
        # the scaler skips optimizer.step on inf/NaN gradients and then (only then) lowers its scale: a skipped
        # step must not advance the schedule (Lightning steps it anyway, Lightning-AI/pytorch-lightning#18828)
        if scale is None or scaler.get_scale() >= scale:
            self.lr_schedulers().step()  # the schedules are per optimizer step (optim.py)
        else:
            self.skipped_steps += 1
        return loss

    def _custom_step_sums(self, batch, n: int) -> torch.Tensor:
        """The configured loss on a batch; its (loss·count, acc·count, count) join the epoch's sums."""
        from .losses import loss_terms

        loss, acc, count = loss_terms(self.loss_fn(self.model, batch), n)
        with torch.no_grad():
            self._train_sums += _weighted(loss, acc, count, self._train_sums.device)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        # called inside opt.step() after the precision plugin unscaled AMP gradients: the place to clip
        if self.gradient_clip_val is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if batch_idx + 1 >= self.trainer.num_training_batches or self.trainer.should_stop:
            self.epoch_metrics = self._finish_epoch()
            self._publish(self.epoch_metrics)

    def _finish_epoch(self) -> dict[str, float]:
        """The epoch's train loss/accuracy (over every rank's examples) and the validation split's."""
        sums = self.trainer.strategy.reduce(self._train_sums.clone(), reduce_op="sum")
        total, correct, n = (float(v) for v in sums)
        metrics = {"train/loss": total / n, "train/acc": correct / n} if n else {}
        if self._val_share is not None:
            val = self.trainer.strategy.reduce(self._val_sums(), reduce_op="sum")
            loss, hits, n_val = (float(v) for v in val)
            metrics.update({"val/loss": loss / n_val, "val/acc": hits / n_val})
        return metrics

    @torch.no_grad()  # not inference_mode: the sums are all-reduced in place afterwards
    def _val_sums(self) -> torch.Tensor:
        """(Σ loss, correct, n) of this rank's contiguous share of the validation split, in eval mode."""
        from lsx.landscape.engine.evaluator import summed_loss_and_hits

        x, y = self._val_share
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            for i in range(0, len(x), self.eval_batch_size):
                j = min(len(x), i + self.eval_batch_size)
                if self.loss_fn is not None:
                    from .losses import loss_terms

                    loss, acc, count = loss_terms(self.loss_fn(self.model, (self._as_input(x[i:j]), y[i:j])), j - i)
                    sums += _weighted(loss, acc, count, self.device)
                    continue
                loss, hits = summed_loss_and_hits(self.model(self._as_input(x[i:j])).float(), y[i:j])
                sums += torch.stack(
                    [loss.double(), hits.double(), torch.tensor(float(j - i), dtype=torch.float64, device=self.device)]
                )
        finally:
            self.model.train(was_training)
        return sums

    def _publish(self, metrics: dict[str, float]) -> None:
        """To the run's loggers (CSV, W&B; rank 0), as Lightning's logging would: with the epoch, at the global step."""
        if not metrics or not self.trainer.is_global_zero:
            return
        for logger in self.trainer.loggers:
            logger.log_metrics({**metrics, "epoch": self.current_epoch}, step=self.global_step)
            logger.save()

    def configure_optimizers(self):
        opt = build_optimizer(self.optimizer_cfg, self.model.parameters())
        steps_per_epoch = max(1, math.ceil(self.trainer.estimated_stepping_batches / max(1, self.trainer.max_epochs)))
        sched = build_scheduler(self.scheduler_cfg, opt, steps_per_epoch, self.epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _weighted(loss: torch.Tensor, acc: torch.Tensor | None, count, device) -> torch.Tensor:
    """(loss·count, acc·count, count) in float64: batch means combined exactly over batches (acc NaN without one)."""
    c = torch.as_tensor(count, dtype=torch.float64, device=device)
    a = torch.tensor(float("nan"), dtype=torch.float64, device=device) if acc is None else acc.detach().double()
    return torch.stack([loss.detach().double() * c, a * c, c])
