"""Hidden activations at named graph nodes, and their per-unit statistics over a fixed input set.

A traced copy of the model returns the chosen nodes' outputs instead of the logits (it shares the
model's modules, so it always sees the model's current weights). Unit = channel (dim 1); for conv
maps every spatial position is one more sample of its channel.

Why it is fast (activation matching should cost about what evaluating its two networks costs): one
forward pass per network and chunk returns every hooked node at once, run as the evaluator runs its
passes (``inference_mode``, channels_last images, chunks of ``auto_chunk_size``, large activations
kept on the heap, eval BatchNorm folded into the convolution before it); the statistics are streaming
sums — a channels_last map *is* its (positions × channels) matrix per input, so Σ a·bᵀ is one batched
matrix product per chunk that reads both maps in place, with no copy and no concatenation of all
activations. Products and sums within one input are float32, sums over inputs float64: correlations
agree with all-float64 ones to ~1e-7 beyond the float32 activations themselves. ``unit_stats``
(REPAIR's targets, not timed against an evaluation) keeps float64 throughout.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.fx
from torch import nn

from lsx.landscape.engine.alloc import keep_large_allocations_on_heap
from lsx.landscape.engine.evaluator import auto_chunk_size, fold_batchnorm

from .spec import trace


def capture(model: nn.Module, nodes: Sequence[str]) -> torch.fx.GraphModule:
    """A module computing {node name: output} for ``nodes`` of the model's fx graph."""
    gm = trace(model)
    by_name = {n.name: n for n in gm.graph.nodes}
    missing = [n for n in nodes if n not in by_name]
    if missing:
        raise ValueError(f"nodes {missing} are not in the traced graph of {type(model).__name__}")
    out = next(n for n in gm.graph.nodes if n.op == "output")
    out.args = ({n: by_name[n] for n in nodes},)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def units(t: torch.Tensor) -> torch.Tensor:
    """(samples × channels): channel on dim 1; batch and spatial positions are samples.

    A view (no copy) for 2-D outputs and channels_last maps."""
    return t.movedim(1, -1).reshape(-1, t.shape[1]) if t.dim() > 2 else t


def batches(x: torch.Tensor, size: int = 500) -> Iterable[torch.Tensor]:
    for i in range(0, len(x), int(size)):
        yield x[i : i + int(size)]


def _as_input(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _chunked_outputs(
    models: Sequence[nn.Module], nodes: Sequence[str], inputs: torch.Tensor, batch_size: int | None
) -> Iterable[list[dict[str, torch.Tensor]]]:
    """Per chunk of ``inputs``: each model's {node: output} (models put in eval mode).

    Eval BatchNorm is folded into the convolution before it; every hooked node keeps its value (a hooked
    BatchNorm output becomes the folded convolution's output; a hooked convolution output is not folded)."""
    keep_large_allocations_on_heap()
    graphs = [fold_batchnorm(capture(m.eval(), nodes)).module for m in models]
    size = int(batch_size) if batch_size else auto_chunk_size(models[0], inputs[:2])
    for xb in batches(inputs, size):
        xb = _as_input(xb)
        yield [g(xb) for g in graphs]


def _float(t: torch.Tensor) -> torch.Tensor:
    """float32 or float64 as it is; half precision (or anything else) as float32, so sums stay exact enough."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


@torch.no_grad()
def unit_stats(
    model: nn.Module, nodes: Sequence[str], inputs: torch.Tensor, batch_size: int | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per node: (mean, std) of every unit over ``inputs`` (population std, float64), model in eval mode.

    ``batch_size``: inputs per forward pass (None: the evaluator's automatic chunk size)."""
    was_training = model.training
    acc: dict[str, list] = {}
    try:
        with torch.inference_mode():
            for (out,) in _chunked_outputs([model], nodes, inputs, batch_size):
                for k, v in out.items():
                    u = units(v).double()  # REPAIR's targets: exact sums over a chunk too (not the timed path)
                    s = acc.setdefault(k, [0.0, 0.0, 0])
                    s[0] = s[0] + u.sum(0)
                    s[1] = s[1] + u.square().sum(0)
                    s[2] += u.shape[0]
    finally:
        model.train(was_training)
    out_stats = {}
    for k, (s1, s2, m) in acc.items():
        mean = s1 / m
        out_stats[k] = (mean, (s2 / m - mean * mean).clamp_min(0).sqrt())
    return out_stats


@torch.no_grad()
def cross_correlation(
    model_a: nn.Module,
    model_b: nn.Module,
    nodes: Sequence[str],
    inputs: torch.Tensor,
    batch_size: int | None = None,
    eps: float = 1e-8,
) -> dict[str, torch.Tensor]:
    """Per node: the units × units Pearson correlation (float64) between a's units (rows) and b's (columns).

    ``batch_size``: inputs per forward pass (None: the evaluator's automatic chunk size). Both models
    are left in eval mode."""
    acc: dict[str, list] = {}
    with torch.inference_mode():
        for oa, ob in _chunked_outputs([model_a, model_b], nodes, inputs, batch_size):
            for k in nodes:
                s = acc.setdefault(k, [0.0] * 5 + [0])
                for i, v in enumerate(_cross_sums(_float(oa[k]), _float(ob[k]))):
                    s[i] = s[i] + v
    out = {}
    for k, (sa, sb, saa, sbb, sab, m) in acc.items():
        ma, mb = sa / m, sb / m
        cov = sab / m - torch.outer(ma, mb)
        sda, sdb = (saa / m - ma * ma).clamp_min(0).sqrt(), (sbb / m - mb * mb).clamp_min(0).sqrt()
        out[k] = cov / (torch.outer(sda, sdb) + eps)
    return out


Sums = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]


def _cross_sums(a: torch.Tensor, b: torch.Tensor) -> Sums:
    """Σa, Σb, Σa², Σb² per unit, Σ a·bᵀ (units × units), all float64, and the number of samples.

    Maps: one batched product per input over its positions, (positions × channels) views of the maps
    (no copy for channels_last), summed over inputs in float64 — one long float32 product over every
    position of the chunk costs ~15% less but loses a digit (~4e-6 in a correlation)."""
    f64 = torch.float64
    if a.dim() == 2:
        s_a, s_b, q_a, q_b = (v.to(f64) for v in (a.sum(0), b.sum(0), a.square().sum(0), b.square().sum(0)))
        return s_a, s_b, q_a, q_b, (a.T @ b).to(f64), a.shape[0]
    n = a.shape[0]
    A, B = a.movedim(1, -1).reshape(n, -1, a.shape[1]), b.movedim(1, -1).reshape(n, -1, b.shape[1])
    s_a, s_b, q_a, q_b = (v.to(f64) for v in (A.sum((0, 1)), B.sum((0, 1)), A.square().sum((0, 1)), B.square().sum((0, 1))))
    ab = torch.bmm(A.transpose(1, 2), B).sum(0, dtype=f64)
    return s_a, s_b, q_a, q_b, ab, n * A.shape[1]
