"""Self-contained model checkpoints: weights + the resolved config that rebuilds the model.

A checkpoint never needs another file: ``load_checkpoint(path).build_model()`` gives the
trained network. Writes are atomic; corrupt or mismatched files are refused with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lsx.models import build_model
from lsx.utils.io import atomic_torch_save

FORMAT = "lsx-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says why."""


@dataclass
class Checkpoint:
    path: Path
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    config_hash: str
    epoch: int
    data_shape: dict[str, int]
    metrics: dict[str, float] = field(default_factory=dict)
    code_version: str = ""
    torch_threads: int | None = None
    stop: dict[str, Any] = field(default_factory=dict)  # the stop rule's outcome so far (epochs_run, steps, stopped_by)

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    def build_model(self) -> nn.Module:
        """Rebuild the architecture from the stored config and load the weights (eval mode)."""
        model = model_from_config(self.config["model"], self.data_shape)
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{self.path}: weights do not match model {self.model_name!r} "
                f"(missing: {list(missing)[:5]}, unexpected: {list(unexpected)[:5]})"
            )
        return model.eval()


def model_from_config(model_cfg: dict[str, Any], data_shape: dict[str, int]) -> nn.Module:
    kwargs = {k: v for k, v in model_cfg.items() if k != "name"}
    if "channels" in kwargs and isinstance(kwargs["channels"], list):
        kwargs["channels"] = tuple(kwargs["channels"])
    return build_model(
        model_cfg["name"],
        data_shape["in_channels"],
        (data_shape["height"], data_shape["width"]),
        data_shape["num_classes"],
        **kwargs,
    )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    config_hash: str,
    epoch: int,
    data_shape: dict[str, int],
    metrics: dict[str, float] | None = None,
    code_version: str = "",
    stop: dict[str, Any] | None = None,
) -> Path:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": config,
        "config_hash": config_hash,
        "epoch": int(epoch),
        "data_shape": dict(data_shape),
        "metrics": dict(metrics or {}),
        "code_version": code_version,
        "torch_threads": torch.get_num_threads(),  # CPU results differ slightly across thread counts
        "stop": dict(stop or {}),
    }
    atomic_torch_save(payload, path)  # byte-identical for equal content (no temp name inside)
    return path


def load_checkpoint(path: str | Path, expect_model: str | None = None) -> Checkpoint:
    """Load and validate a checkpoint; ``expect_model`` refuses one of another architecture."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an lsx checkpoint (expected format {FORMAT!r})")
    ckpt = Checkpoint(
        path=path,
        state_dict=payload["state_dict"],
        config=payload["config"],
        config_hash=payload["config_hash"],
        epoch=payload["epoch"],
        data_shape=payload["data_shape"],
        metrics=payload.get("metrics", {}),
        code_version=payload.get("code_version", ""),
        torch_threads=payload.get("torch_threads"),
        stop=payload.get("stop", {}),
    )
    if expect_model is not None and ckpt.model_name != expect_model:
        raise CheckpointError(f"{path} holds a {ckpt.model_name!r} model, expected {expect_model!r}")
    return ckpt


def check_same_architecture(ckpts: list[Checkpoint]) -> None:
    """Refuse checkpoints of different architectures or data shapes (they share no parameter space)."""
    first = ckpts[0]
    for c in ckpts[1:]:
        if c.config["model"] != first.config["model"] or c.data_shape != first.data_shape:
            raise CheckpointError(
                f"checkpoints of different architectures: {first.path} ({first.config['model']}, {first.data_shape}) "
                f"vs {c.path} ({c.config['model']}, {c.data_shape})"
            )
