"""Self-contained model checkpoints: weights + the resolved config that rebuilds the model.

A checkpoint never needs another file: ``load_checkpoint(path).build_model()`` gives the
trained network. Writes are atomic; corrupt or mismatched files are refused with the reason.

Integrity: each save records the file's sha256 in ``checksums.json`` beside it (the run directory's
metadata), and every load verifies it. Why: a flipped byte inside a tensor still unpickles, so a
damaged checkpoint would otherwise be used silently with different weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lsx.models import build_model
from lsx.utils.io import atomic_torch_save, atomic_write_json

FORMAT = "lsx-checkpoint-v1"
CHECKSUMS = "checksums.json"  # {file name: sha256} of the lsx checkpoints in a directory


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
    sha256: str | None = None  # of the file, when it was loaded as a job's input (external checkpoints always)

    @property
    def model_name(self) -> str:
        return model_label(self.config["model"])

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


def model_label(model_cfg: dict[str, Any]) -> str:
    """The model's name: the registry name, or a ``_target_`` config's label (lsx.models.target)."""
    from lsx.models.target import is_target, target_label

    return target_label(model_cfg) if is_target(model_cfg) else str(model_cfg["name"])


def model_from_config(model_cfg: dict[str, Any], data_shape: dict[str, int]) -> nn.Module:
    """A registry model by ``name``, or any ``nn.Module`` that ``model._target_`` builds (lsx.models.target)."""
    from lsx.models.target import instantiate_model, is_target

    if is_target(model_cfg):
        return instantiate_model(model_cfg, data_shape)
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
    record_checksum(path)
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_checksums(directory: Path) -> dict[str, str]:
    try:
        data = json.loads((directory / CHECKSUMS).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"{directory / CHECKSUMS} is unreadable ({type(err).__name__}: {err}); "
            f"delete it to trust the checkpoints in {directory} again"
        ) from None
    return data if isinstance(data, dict) else {}


def record_checksum(path: str | Path) -> str:
    """Store ``path``'s sha256 in its directory's ``checksums.json`` (atomically); returns the digest."""
    path = Path(path)
    digest = file_sha256(path)
    sums = _read_checksums(path.parent)
    if sums.get(path.name) != digest:
        sums[path.name] = digest
        atomic_write_json(path.parent / CHECKSUMS, dict(sorted(sums.items())))
    return digest


def verify_checksum(path: Path) -> str | None:
    """The file's sha256 when ``checksums.json`` records it and it matches; None when nothing is recorded
    (a checkpoint made elsewhere or before checksums existed); CheckpointError on a mismatch."""
    expected = _read_checksums(path.parent).get(path.name)
    if expected is None:
        return None
    actual = file_sha256(path)
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {path} fails its sha256 check ({actual[:12]}… recorded {expected[:12]}…): the "
            f"file changed after it was written; delete {path.parent} to retrain it"
        )
    return actual


def load_checkpoint(path: str | Path, expect_model: str | None = None) -> Checkpoint:
    """Load and validate a checkpoint; ``expect_model`` refuses one of another architecture."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    verify_checksum(path)
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


# ---------------------------------------------------------------- checkpoints made outside lsx
EXTERNAL_FORMATS = ".pt/.pth/.bin (a state dict), .safetensors, .ckpt (Lightning)"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file: ``.safetensors``, a Lightning ``.ckpt`` (its ``state_dict``) or a torch file."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError(f"{path}: reading .safetensors needs the safetensors package (pip install 'lsx[hf]')") from None
        return load_file(str(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=path.suffix != ".ckpt")
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable torch file ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not payload or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"{path} holds no state dict (a dict of tensors); valid: {EXTERNAL_FORMATS}")
    return payload


def _strip_prefix(sd: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Drop a wrapper's prefix on every key (``model.`` of a LightningModule, ``module.`` of DDP) when that makes keys fit."""
    for prefix in ("model.", "module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in sd) and not (set(sd) & expected):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def load_external_checkpoint(path: str | Path, config: dict[str, Any], data_shape: dict[str, int]) -> Checkpoint:
    """A checkpoint trained outside lsx, loaded into the model ``config["model"]`` builds for ``data_shape``.

    Keys must match the model's exactly (after dropping a ``model.``/``module.`` wrapper prefix); a tied weight
    saved once (``lm_head.weight`` = ``wte.weight``) counts as present. A mismatch is one line listing the missing
    and unexpected keys. The file's sha256 is kept (``Checkpoint.sha256``) for the job's results.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    model = model_from_config(config["model"], data_shape)
    expected = model.state_dict()
    sd = _strip_prefix(_read_state_dict(path), set(expected))
    tied = {
        n
        for n, t in expected.items()
        if n not in sd and any(m in sd and t.data_ptr() == expected[m].data_ptr() for m in expected if m != n)
    }
    missing = [k for k in expected if k not in sd and k not in tied]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        show = lambda ks: f"{len(ks)} [{', '.join(ks[:6])}{', ...' if len(ks) > 6 else ''}]"  # noqa: E731
        raise CheckpointError(
            f"{path} does not fit model {model_label(config['model'])!r}: missing keys {show(missing)}, "
            f"unexpected keys {show(unexpected)}" + (f", wrong shapes {show(wrong)}" if wrong else "")
        )
    model.load_state_dict(sd, strict=False)
    digest = file_sha256(path)
    return Checkpoint(
        path=path,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        config=config,
        config_hash=f"external-{digest[:12]}",
        epoch=-1,
        data_shape=dict(data_shape),
        sha256=digest,
    )


def load_any_checkpoint(path: str | Path, config: dict[str, Any], data_shape: dict[str, int]) -> Checkpoint:
    """An lsx checkpoint (format ``lsx-checkpoint-v1``), else a state dict made elsewhere (:func:`load_external_checkpoint`)."""
    path = Path(path)
    if path.suffix not in (".safetensors", ".ckpt") and path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:
            payload = None
        if isinstance(payload, dict) and payload.get("format") == FORMAT:
            ckpt = load_checkpoint(path)
            ckpt.sha256 = file_sha256(path)
            return ckpt
    return load_external_checkpoint(path, config, data_shape)
