"""Losses by target: ``loss._target_`` names a callable ``(model, batch) -> scalar`` used by training and the landscape.

Why a callable of (model, batch) and not of (logits, labels): a language model needs its own call and output
field, a physics-style loss no labels at all. ``loss: null`` (the default) is cross-entropy on (x, y), which
training and the landscape evaluator compute on their fast paths; any other loss takes the generic path.

A loss returns a scalar tensor (the mean over the batch), or a dict ``{"loss": scalar, "acc": scalar,
"count": n}``: ``acc`` is optional (accuracy-type metrics are NaN without it) and ``count`` is the number of
units the mean is over (tokens for a language model; default the batch's examples), so means over chunks of
different sizes combine exactly. A ``_target_`` that is a class is instantiated with the config's other keys; a
function is bound to them (``functools.partial``).
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[nn.Module, Any], Any]


def model_logits(out: Any) -> torch.Tensor:
    """The logits (or predictions) in a model's output: a tensor, a dict's or dataclass's ``logits``, a tuple's first."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ValueError(
        f"cannot find logits in a model output of type {type(out).__name__}: return a tensor, "
        "a dict or object with 'logits', or a tuple whose first item is the logits"
    )


class CrossEntropy:
    """Cross-entropy of ``model(x)`` against integer labels ``y``, with accuracy (the default loss)."""

    default = True  # the built-in fast paths compute exactly this

    def __call__(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = model_logits(model(x))
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}


class NextTokenCrossEntropy:
    """Causal LM loss: ``y[:, t]`` is the token after ``x[:, t]``; targets equal to ``ignore_index`` (padding) are skipped.

    ``pad_token_id`` (optional) also passes ``attention_mask = x != pad_token_id`` to the model. Accuracy is the
    fraction of non-ignored next tokens predicted exactly; ``count`` the number of those tokens.
    """

    def __init__(self, ignore_index: int = -100, pad_token_id: int | None = None) -> None:
        self.ignore_index = int(ignore_index)
        self.pad_token_id = pad_token_id

    def __call__(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        out = model(x) if self.pad_token_id is None else model(x, attention_mask=(x != self.pad_token_id).long())
        logits = model_logits(out)
        flat, target = logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        keep = target != self.ignore_index
        count = keep.sum()
        loss = F.cross_entropy(flat.float(), target, ignore_index=self.ignore_index)
        acc = ((flat.argmax(-1) == target) & keep).sum() / count.clamp(min=1)
        return {"loss": loss, "acc": acc, "count": count}


class MSE:
    """Mean squared error of ``model(x)`` against real targets ``y`` (regression; no accuracy)."""

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        pred = model_logits(model(x))
        return F.mse_loss(pred.reshape(y.shape).float(), y.float())


def build_loss(cfg: Mapping[str, Any] | None) -> LossFn | None:
    """The configured loss, or None for the default cross-entropy (the fast paths)."""
    if not cfg:
        return None
    from lsx.models.target import instantiate, is_target, locate

    if not is_target(cfg):
        raise ValueError(f"loss must be null (cross-entropy) or a config with _target_, got {dict(cfg)!r}")
    obj = locate(cfg["_target_"], "loss")
    if getattr(obj, "default", False) and len(cfg) == 1:
        return None
    if inspect.isclass(obj):
        fn = instantiate(cfg, "loss", drop=())
    else:
        fn = functools.partial(obj, **{k: v for k, v in cfg.items() if k != "_target_"})
    if not callable(fn):
        raise ValueError(f"loss._target_={cfg['_target_']!r} built a {type(fn).__name__}, not a callable (model, batch) -> loss")
    return fn


def loss_terms(out: Any, batch_len: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | float]:
    """(mean loss, mean accuracy or None, count) from what a loss returned."""
    if isinstance(out, Mapping):
        return out["loss"], out.get("acc"), out.get("count", batch_len)
    return out, None, batch_len


def check_loss(loss_fn: LossFn, model: nn.Module, batch: Any, key: str = "loss") -> None:
    """One line before training when the loss on a first batch is not a finite scalar."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = loss_fn(model, batch)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(
            f"{key} failed on the first batch: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    finally:
        model.train(was_training)
    if isinstance(out, Mapping) and "loss" not in out:
        raise ValueError(
            f"{key} returned a dict without 'loss' (keys: {', '.join(map(str, out))}); valid: a scalar "
            "tensor or {'loss': scalar, 'acc': scalar, 'count': n}"
        )
    loss = loss_terms(out, 0)[0]
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(
            f"{key} returned {shape} on the first batch, not a scalar tensor: reduce it to one number " "(e.g. .mean())"
        )
    if not math.isfinite(float(loss)):
        raise ValueError(f"{key} is {float(loss)} on the first batch (before any training): check the data and the loss")
