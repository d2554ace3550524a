"""A model's parameters seen as one flat vector.

Why: every landscape analysis moves the model to θ* + Σ c_k d_k many times. Copying
a state_dict per point is the main cost of the original loss-landscape code; here the
parameters are overwritten in place from one flat tensor, and the same layout gives a
differentiable functional loss for gradients and Hessian-vector products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

_BN_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Entry:
    """One tensor of the flat layout: its name, shape, slice and role."""

    name: str
    shape: tuple[int, ...]
    start: int
    stop: int
    kind: str  # "weight" (conv/linear, ndim>1), "bias", "bn" (norm-layer affine), "buffer" (running stats)

    @property
    def numel(self) -> int:
        return self.stop - self.start


def _bn_param_names(model: nn.Module) -> set[str]:
    names = set()
    for mod_name, mod in model.named_modules():
        if isinstance(mod, _BN_TYPES):
            for p_name, _ in mod.named_parameters(recurse=False):
                names.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


def _float_buffers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Running statistics (floating buffers of norm layers); num_batches_tracked is excluded."""
    out = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, _BN_TYPES):
            for b_name, buf in mod.named_buffers(recurse=False):
                if buf is not None and buf.is_floating_point():
                    out.append((f"{mod_name}.{b_name}" if mod_name else b_name, buf))
    return out


class FlatParams:
    """Flat view of ``model``'s trainable parameters, optionally followed by BN running stats.

    ``get()`` returns a fresh 1-D copy, ``set_(v)`` writes ``v`` into the live tensors in
    place (no allocation of model-sized state dicts), ``unflatten(v)`` gives a name→view
    dict usable with ``torch.func.functional_call``.
    """

    def __init__(self, model: nn.Module, include_buffers: bool = False) -> None:
        self.model = model
        self.include_buffers = include_buffers
        bn_names = _bn_param_names(model)
        entries: list[Entry] = []
        tensors: list[torch.Tensor] = []
        offset = 0
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            kind = "bn" if name in bn_names else ("weight" if p.dim() > 1 else "bias")
            entries.append(Entry(name, tuple(p.shape), offset, offset + p.numel(), kind))
            tensors.append(p)
            offset += p.numel()
        self.num_params = offset
        if include_buffers:
            for name, b in _float_buffers(model):
                entries.append(Entry(name, tuple(b.shape), offset, offset + b.numel(), "buffer"))
                tensors.append(b)
                offset += b.numel()
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._tensors = tensors
        self.numel = offset

    # ------------------------------------------------------------------ basic access
    @property
    def device(self) -> torch.device:
        return self._tensors[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self._tensors[0].dtype

    def get(self) -> torch.Tensor:
        """A detached 1-D copy of the current values."""
        with torch.no_grad():
            return torch.cat([t.detach().reshape(-1) for t in self._tensors])

    def set_(self, vec: torch.Tensor) -> None:
        """Write ``vec`` into the model's tensors in place."""
        self._check(vec)
        with torch.no_grad():
            for e, t in zip(self.entries, self._tensors):
                t.copy_(vec[e.start : e.stop].view(e.shape))

    def add_(self, vec: torch.Tensor, alpha: float = 1.0) -> None:
        """In-place ``θ ← θ + alpha·vec`` without materializing θ."""
        self._check(vec)
        with torch.no_grad():
            for e, t in zip(self.entries, self._tensors):
                t.add_(vec[e.start : e.stop].view(e.shape), alpha=alpha)

    def grad(self) -> torch.Tensor:
        """Flat gradient of the parameter part (zeros where ``.grad`` is None)."""
        parts = []
        for e, t in zip(self.entries, self._tensors):
            if e.kind == "buffer":
                continue
            parts.append(torch.zeros(e.numel, dtype=t.dtype, device=t.device) if t.grad is None else t.grad.reshape(-1))
        return torch.cat(parts)

    def unflatten(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        """name → view of ``vec`` (keeps autograd links to ``vec``)."""
        self._check(vec)
        return {e.name: vec[e.start : e.stop].view(e.shape) for e in self.entries}

    def mask(self, kinds: Iterable[str]) -> torch.Tensor:
        """Boolean mask over the flat layout selecting entries of the given kinds."""
        kinds = set(kinds)
        m = torch.zeros(self.numel, dtype=torch.bool, device=self.device)
        for e in self.entries:
            if e.kind in kinds:
                m[e.start : e.stop] = True
        return m

    def layout(self) -> list[dict]:
        """JSON-able description of the layout (stored with directions for provenance)."""
        return [dict(name=e.name, shape=list(e.shape), start=e.start, stop=e.stop, kind=e.kind) for e in self.entries]

    def _check(self, vec: torch.Tensor) -> None:
        if vec.dim() != 1 or vec.numel() != self.numel:
            raise ValueError(
                f"flat vector has shape {tuple(vec.shape)} but the model's flat layout needs ({self.numel},) "
                f"({self.num_params} parameters{' + BN buffers' if self.include_buffers else ''})"
            )


def twice_differentiable_attention():
    """Scaled dot-product attention on its plain-math kernel: the fused CPU/GPU kernels (flash, memory-efficient)
    have no double backward, which every Hessian-vector product of an attention model needs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def functional_loss(
    model: nn.Module,
    flat: FlatParams,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    l2: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable ``f(θ_flat) -> scalar`` mean loss over ``batches`` (+ ``l2/2·‖θ‖²``).

    Uses ``torch.func.functional_call`` so gradients and double-backward Hessian-vector
    products flow to the flat vector. The model is evaluated in its current train/eval
    mode; callers usually put it in eval mode so BatchNorm uses running statistics.
    Only the parameter part of the layout is differentiated (buffers stay as in the model).
    """
    loss = loss or nn.functional.cross_entropy
    n_total = sum(int(y.shape[0]) for _, y in batches)
    param_entries = [e for e in flat.entries if e.kind != "buffer"]

    def f(theta: torch.Tensor) -> torch.Tensor:
        if theta.dim() != 1 or theta.numel() not in (flat.num_params, flat.numel):
            raise ValueError(f"flat vector has shape {tuple(theta.shape)}, expected ({flat.num_params},)")
        params = {e.name: theta[e.start : e.stop].view(e.shape) for e in param_entries}
        total = theta.new_zeros(())
        for x, y in batches:
            with twice_differentiable_attention():
                out = functional_call(model, params, (x,))
            total = total + loss(out, y) * (y.shape[0] / n_total)
        if l2:
            total = total + 0.5 * l2 * theta[: flat.num_params].pow(2).sum()
        return total

    return f


class _LossCall(nn.Module):
    """``loss(model, batch)`` as a module, so ``functional_call`` can swap the model's parameters under it."""

    def __init__(self, model: nn.Module, loss: Callable) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch):
        return self.loss(self.model, batch)


def functional_model_loss(
    model: nn.Module,
    flat: FlatParams,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    model_loss: Callable,
    l2: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`functional_loss` for a loss of the model, ``model_loss(model, batch)`` (lsx.training.losses: a language
    model's next-token loss, a loss without labels): a scalar, or a dict with ``loss`` and optionally ``count`` (the
    units its mean is over, e.g. tokens). Batch means are weighted by their counts, as the evaluator weights them."""
    call = _LossCall(model, model_loss)
    param_entries = [e for e in flat.entries if e.kind != "buffer"]

    def f(theta: torch.Tensor) -> torch.Tensor:
        if theta.dim() != 1 or theta.numel() not in (flat.num_params, flat.numel):
            raise ValueError(f"flat vector has shape {tuple(theta.shape)}, expected ({flat.num_params},)")
        params = {f"model.{e.name}": theta[e.start : e.stop].view(e.shape) for e in param_entries}
        total, units = theta.new_zeros(()), 0.0
        for batch in batches:
            with twice_differentiable_attention():
                out = functional_call(call, params, (batch,))
            loss, count = (out["loss"], out.get("count", len(batch[0]))) if isinstance(out, Mapping) else (out, len(batch[0]))
            count = float(count)
            total = total + loss * count
            units += count
        total = total / max(units, 1e-300)
        if l2:
            total = total + 0.5 * l2 * theta[: flat.num_params].pow(2).sum()
        return total

    return f
