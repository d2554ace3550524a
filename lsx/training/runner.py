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
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
import yaml
from omegaconf import DictConfig

from lsx.config import config_hash, to_container, training_config
from lsx.data import TensorDataModule, build_datamodule
from lsx.utils.io import atomic_write_json, atomic_write_text
from lsx.utils.version import code_version

from .callbacks import EpochCheckpoints, LearningCurve, ResumePoint, checkpoint_name
from .checkpoints import Checkpoint, load_checkpoint, model_from_config
from .module import ClassifierModule

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """A finished training run: where it is and what it produced."""

    run_dir: Path
    config_hash: str
    config: dict[str, Any]
    checkpoints: dict[int, Path]
    summary: dict[str, float]

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
            raise ValueError(f"run {self.run_dir.name} has no checkpoint at epoch {epoch}; saved: {sorted(self.checkpoints)}")
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
        meta = json.loads((run_dir / "summary.json").read_text())
        ckpts = {int(p.stem.split("_")[1]): p for p in sorted(run_dir.glob("epoch_*.pt"))}
        return cls(run_dir, meta["config_hash"], meta["config"], ckpts, meta["metrics"])


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
    name = f"{tcfg['model']['name']}_{tcfg['data']['name']}_s{tcfg['seed']}_{h[:12]}"
    return Path(cfg["paths"]["cache_dir"]) / "train" / name, h


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_model_fits(model: torch.nn.Module, dm: TensorDataModule, model_name: str) -> None:
    """One forward pass on two examples, so a shape mismatch is reported before training."""
    x, _ = dm.split("train")
    try:
        with torch.no_grad():
            out = model.eval()(x[:2])
    except RuntimeError as err:
        raise ValueError(
            f"model {model_name!r} does not fit data {dm.name!r} of shape {tuple(x.shape[1:])}: {err}"
        ) from None
    finally:
        model.train()
    if out.shape[-1] != dm.shape.num_classes:
        raise ValueError(f"model {model_name!r} outputs {out.shape[-1]} classes, data {dm.name!r} has {dm.shape.num_classes}")


def build_data(cfg: dict[str, Any]) -> TensorDataModule:
    d = dict(cfg["data"])
    return build_datamodule(d.pop("name"), **d)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 500) -> dict[str, float]:
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        out = model(x[i : i + chunk])
        loss += float(torch.nn.functional.cross_entropy(out, y[i : i + chunk], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + chunk]).sum())
    n = max(1, len(x))
    return {"loss": loss / n, "acc": correct / n}


def train(cfg: DictConfig | dict[str, Any], progress: bool = True) -> TrainedRun:
    """Train (or fetch from the cache, or resume) the run that ``cfg`` describes."""
    c = to_container(cfg) if isinstance(cfg, DictConfig) else cfg
    run_dir, h = run_dir_for(c)
    with _locked(run_dir):
        if (run_dir / "DONE").exists():
            log.info("training cache hit: %s", run_dir)
            return TrainedRun.from_dir(run_dir)
        return _train_locked(c, run_dir, h, progress)


def _train_locked(c: dict[str, Any], run_dir: Path, h: str, progress: bool) -> TrainedRun:
    tcfg = training_config(c)
    training = c["training"]
    seed = int(c["seed"])
    L.seed_everything(seed, workers=True, verbose=False)
    dm = build_data(c).prepare()
    dm.set_loader_seed(seed)
    shape = dm.shape
    data_shape = {"in_channels": shape.in_channels, "height": shape.height, "width": shape.width, "num_classes": shape.num_classes}
    model = model_from_config(c["model"], data_shape)
    check_model_fits(model, dm, c["model"]["name"])
    module = ClassifierModule(
        model, c["optimizer"], c["scheduler"], int(training["epochs"]), bool(training.get("channels_last", True))
    )
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(tcfg, sort_keys=False))

    from lsx.tracking.loggers import build_loggers

    trainer_cfg = dict(c.get("trainer") or {})
    loggers = build_loggers(dict(c.get("logger") or {}), run_dir, run_dir.name, tcfg, c)
    resume = run_dir / "resume.ckpt"
    trainer = L.Trainer(
        max_epochs=int(training["epochs"]),
        accelerator=trainer_cfg.get("accelerator", "cpu"),
        devices=trainer_cfg.get("devices", 1),
        num_nodes=int(trainer_cfg.get("num_nodes", 1)),
        strategy=trainer_cfg.get("strategy", "auto"),
        precision=trainer_cfg.get("precision", "32-true"),
        deterministic=bool(trainer_cfg.get("deterministic", True)),
        gradient_clip_val=training.get("gradient_clip_val"),
        logger=loggers or False,
        enable_checkpointing=False,
        enable_progress_bar=progress and bool(trainer_cfg.get("progress_bar", True)),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=int(trainer_cfg.get("log_every_n_steps", 10)),
        default_root_dir=str(run_dir),
        callbacks=[
            EpochCheckpoints(run_dir, checkpoint_epochs(training), tcfg, h, data_shape, code_version()),
            LearningCurve(run_dir / "metrics.csv"),
            ResumePoint(resume),
        ],
    )
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume.exists() else None)
    finally:
        from lsx.tracking.wandb_setup import finish

        finish()
    if not trainer.is_global_zero:
        return None  # type: ignore[return-value]
    final = load_checkpoint(run_dir / checkpoint_name(int(training["epochs"]))).build_model()
    metrics = {}
    for split in ("train", "val", "test"):
        x, y = dm.split(split)
        if len(x):
            metrics.update({f"{split}_{k}": v for k, v in evaluate_model(final, x, y).items()})
    atomic_write_json(run_dir / "summary.json", {"config_hash": h, "config": tcfg, "metrics": metrics})
    atomic_write_text(run_dir / "DONE", "done\n")
    if resume.exists() and not training.get("keep_resume", False):
        os.unlink(resume)
    return TrainedRun.from_dir(run_dir)
