"""Lightning loggers from ``cfg.logger`` (wandb, csv or none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .wandb_setup import init_kwargs

LOGGERS = ("wandb", "csv", "none")


def build_loggers(
    logger_cfg: dict[str, Any],
    run_dir: Path,
    name: str,
    config: dict[str, Any],
    run_config: dict[str, Any] | None = None,
    wandb_dir: Path | None = None,
) -> list:
    """Loggers of one training run; ``run_config`` (the full config, with ``_overrides``) names the
    W&B run by its swept values and tags it with the experiment and the swept keys. ``wandb_dir`` (the
    command's run directory) keeps W&B's files out of the training cache, which must hold the model only."""
    kind = logger_cfg.get("name", "none")
    if kind == "none":
        return []
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return [CSVLogger(save_dir=str(run_dir), name="csv", version="")]
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        wandb_dir = Path(wandb_dir or run_dir)
        wandb_dir.mkdir(parents=True, exist_ok=True)
        kw = init_kwargs(logger_cfg, name, "train", str(wandb_dir), config)
        kw.pop("reinit", None)
        if run_config is not None:
            from .wandb_log import run_identity

            kw.update(run_identity(run_config, "train"))
            kw["config"] = dict(config, training_run=name, overrides=list(run_config.get("_overrides") or []))
        lg = WandbLogger(**{k: v for k, v in kw.items() if v is not None}, save_dir=str(wandb_dir))
        # Lightning always passes anonymous=None, on which wandb>=0.2x prints a deprecation line
        # through WANDB_SILENT; dropping the key keeps a run's console output to lsx's own lines
        getattr(lg, "_wandb_init", {}).pop("anonymous", None)
        return [lg]
    raise ValueError(f"unknown logger {kind!r}; valid loggers: {', '.join(LOGGERS)}")
