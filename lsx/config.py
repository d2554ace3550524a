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
_TRAINING_KEYS_HASHED_WHEN_SET = ("target_train_loss", "max_steps", "target_on", "target_check_every")
# training keys that never change the trained model (how often resume state is saved): never hashed
_TRAINING_KEYS_NOT_HASHED = ("resume_every", "resume_min_interval_s")
_LANDSCAPE_DATA_KEYS = ("landscape_train", "landscape_seed")
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

    from lsx.cli import resolvers  # noqa: F401  (the configs' resolvers, e.g. ${shape:num_classes})

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
    out["training"] = hashed_training(out["training"])
    # a landscape stop target (training.target_on) measures on the landscape subset: its size and seed then
    # decide where the run stops, so they join the key
    measured_on = _LANDSCAPE_DATA_KEYS if out["training"].get("target_on") in ("landscape", "landscape_upbn") else ()
    out["data"] = {k: v for k, v in out["data"].items() if k not in _DATA_KEYS_NOT_HASHED or k in measured_on}
    if c.get("loss"):  # a configured loss (lsx.training.losses); null (cross-entropy) stays out: old runs stay valid
        out["loss"] = c["loss"]
    trainer = c.get("trainer", {}) or {}
    precision = normalized_precision(trainer.get("precision", "32-true"))
    if precision != "32-true":  # 32-bit runs keep the key they had before precision was keyed
        out["precision"] = precision
    if is_multiprocess_strategy(trainer.get("strategy", "auto")):
        # what makes DDP weights differ from one process's: the world size (with data.batch_size per process, it
        # fixes the effective batch and each rank's share of the data), not how the processes are launched
        out["distributed"] = {"world_size": world_size(trainer)}
    return out


_PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


def normalized_precision(precision: Any) -> str:
    """Lightning's canonical name of a precision setting (``32`` and ``"32-true"`` train the same model)."""
    p = str(precision)
    return _PRECISION_ALIASES.get(p, p)


def is_multiprocess_strategy(strategy: Any) -> bool:
    return any(s in str(strategy) for s in ("ddp", "fsdp"))


def world_size(trainer: dict[str, Any]) -> int:
    """How many processes a multi-process trainer runs: devices per node (``-1``/``"auto"`` resolved to the
    visible GPUs, a list or ``"0,1"`` counted) × ``num_nodes``."""
    devices, accel = trainer.get("devices", 1), str(trainer.get("accelerator", "cpu"))
    if isinstance(devices, (list, tuple)):
        n = len(devices)
    elif isinstance(devices, str) and "," in devices:
        n = len([d for d in devices.split(",") if d.strip()])
    elif str(devices) in ("-1", "auto"):
        import torch

        n = torch.cuda.device_count() if accel in ("gpu", "cuda", "auto") else 1
    else:
        n = int(devices)
    return max(1, n) * int(trainer.get("num_nodes", 1) or 1)


def hashed_training(training: dict[str, Any]) -> dict[str, Any]:
    """``training`` without the keys that change no model: the stop-rule keys while unset (null) and
    the resume-point schedule always (a run resumed from an epoch-2 or an epoch-3 point is the same run)."""
    return {
        k: v
        for k, v in training.items()
        if k not in _TRAINING_KEYS_NOT_HASHED and not (k in _TRAINING_KEYS_HASHED_WHEN_SET and v is None)
    }


def config_hash(obj: Any) -> str:
    """Stable SHA-256 of a JSON-able config (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sweep_points(overrides: Sequence[str], multirun: bool, limit: int | None = None) -> list[list[str]]:
    """The override lists of every job a command line launches: one for a single run; under ``-m`` the
    product of the sweep values in Hydra's basic-sweeper order (job number = list index), the first
    ``limit`` of them when given (validation caps it so a huge grid costs a second or two)."""
    if not multirun:
        return [list(overrides)]
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    choices = []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if o.is_sweep_override():
            key = o.get_key_element()
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    return [list(p) for p in itertools.islice(itertools.product(*choices), limit)]
