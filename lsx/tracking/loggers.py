"""Lightning loggers from ``cfg.logger`` (wandb, csv or none)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .wandb_setup import init_kwargs

LOGGERS = ("wandb", "csv", "none")


def build_loggers(logger_cfg: dict[str, Any], run_dir: Path, name: str, config: dict[str, Any]) -> list:
    kind = logger_cfg.get("name", "none")
    if kind == "none":
        return []
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return [CSVLogger(save_dir=str(run_dir), name="csv", version="")]
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        kw = init_kwargs(logger_cfg, name, "train", str(run_dir), config)
        kw.pop("reinit", None)
        return [WandbLogger(**{k: v for k, v in kw.items() if v is not None}, save_dir=str(run_dir))]
    raise ValueError(f"unknown logger {kind!r}; valid loggers: {', '.join(LOGGERS)}")
