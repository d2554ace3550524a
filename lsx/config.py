"""Composing configs: Hydra plus the experiment ``scale`` presets, and the training-cache key.

Why the scale re-compose: an experiment file is a paper-scale runbook; its ``scales.<name>``
list holds the Hydra overrides that shrink it (e.g. ``data=digits``). Group overrides are not
allowed inside interpolated defaults, so the scale overrides are applied by composing again
with them placed *before* the user's own overrides (the user still wins).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

_PACKAGE = Path(__file__).resolve().parent
# an installed wheel ships the configs as lsx/conf (setup.py); a source checkout has them at the top
CONF_DIR = _PACKAGE / "conf" if (_PACKAGE / "conf" / "config.yaml").is_file() else _PACKAGE.parent / "conf"
CONFIG_NAME = "config"

# keys of the composed config that determine a training run (the cache key)
TRAINING_KEYS = ("model", "data", "optimizer", "scheduler", "training", "seed")
# data options that do not change training (evaluation conveniences)
# training keys added after caches existed: left out of the hash while unset (null), so old runs stay valid
_TRAINING_KEYS_HASHED_WHEN_SET = ("target_train_loss", "max_steps")
# training keys that never change the trained model (how often resume state is saved): never hashed
_TRAINING_KEYS_NOT_HASHED = ("resume_every", "resume_min_interval_s")
_DATA_KEYS_NOT_HASHED = (
    "eval_batch_size",
    "num_workers",
    "landscape_train",
    "landscape_test",
    "landscape_seed",
    "root",
    "download",
)


def scale_overrides(cfg: DictConfig) -> list[str]:
    """The overrides the experiment declares for ``cfg.scale`` (empty when none).

    A preset is written for its own analysis, yet its runbook invites others (``analysis=hessian``
    on the taxonomy preset): a scale override of an ``analysis.<key>`` that the selected analysis
    does not have is skipped (see :func:`skipped_scale_overrides`), every other key must exist.
    """
    return [o for o in _declared_scale_overrides(cfg) if not _foreign_analysis_key(cfg, o)]


def skipped_scale_overrides(cfg: DictConfig) -> list[str]:
    """The scale overrides left out because the selected analysis has no such key."""
    return [o for o in _declared_scale_overrides(cfg) if _foreign_analysis_key(cfg, o)]


def _declared_scale_overrides(cfg: DictConfig) -> list[str]:
    scales = cfg.get("scales") or {}
    scale = cfg.get("scale", "paper")
    if scale != "paper" and scale not in scales:
        name = cfg.get("experiment_name") or "the default config"
        raise ValueError(f"{name} has no scale {scale!r}; valid scales: {', '.join(['paper', *scales])}")
    return [str(o) for o in (scales.get(scale) or [])]


def _foreign_analysis_key(cfg: DictConfig, override: str) -> bool:
    key = override.split("=", 1)[0]
    if not key.startswith("analysis."):
        return False
    analysis = cfg.get("analysis")
    return analysis is None or key.split(".")[1] not in analysis


def _compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(CONFIG_NAME, overrides=list(overrides))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(CONFIG_NAME, overrides=list(overrides))


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose like the command line would, scale presets included (used by tests and tools)."""
    cfg = _compose(overrides)
    extra = scale_overrides(cfg)
    return _compose(extra + list(overrides)) if extra else cfg


def apply_scale(cfg: DictConfig) -> DictConfig:
    """Inside a Hydra app: re-compose with the experiment's scale overrides, keeping hydra's node."""
    extra = scale_overrides(cfg)
    if not extra:
        return cfg
    from hydra.core.hydra_config import HydraConfig

    user = list(HydraConfig.get().overrides.task)
    return _compose(extra + user)


def to_container(cfg: DictConfig | dict) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def training_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """The part of the config that determines a trained model (what the cache is keyed by)."""
    c = to_container(cfg) if isinstance(cfg, DictConfig) else cfg
    out = {k: c[k] for k in TRAINING_KEYS}
    out["data"] = {k: v for k, v in out["data"].items() if k not in _DATA_KEYS_NOT_HASHED}
    out["training"] = hashed_training(out["training"])
    trainer = c.get("trainer", {}) or {}
    if str(trainer.get("strategy", "auto")).startswith("ddp"):
        out["distributed"] = {"strategy": "ddp", "devices": trainer.get("devices"), "num_nodes": trainer.get("num_nodes", 1)}
    return out


def hashed_training(training: dict[str, Any]) -> dict[str, Any]:
    """``training`` without the keys that change no model: the stop-rule keys while unset (null) and
    the resume-point schedule always (a run resumed from an epoch-2 or an epoch-3 point is the same run)."""
    return {k: v for k, v in training.items()
            if k not in _TRAINING_KEYS_NOT_HASHED and not (k in _TRAINING_KEYS_HASHED_WHEN_SET and v is None)}


def config_hash(obj: Any) -> str:
    """Stable SHA-256 of a JSON-able config (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
