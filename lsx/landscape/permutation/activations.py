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


HELD_BYTES = 1 << 30  # one chunk of every network's hooked maps, held at once while a set is matched


def _chunked_outputs(
    models: Sequence[nn.Module],
    nodes: Sequence[str],
    inputs: torch.Tensor,
    batch_size: int | None,
    held_bytes: int = HELD_BYTES,
) -> Iterable[list[dict[str, torch.Tensor]]]:
    """Per chunk of ``inputs``: each model's {node: output} (models put in eval mode).

    Eval BatchNorm is folded into the convolution before it; every hooked node keeps its value (a hooked
    BatchNorm output becomes the folded convolution's output; a hooked convolution output is not folded).
    The chunk (``batch_size``, or the evaluator's automatic size) shrinks where one chunk of every model's
    maps would exceed ``held_bytes``, so matching a set of hundreds of optima stays within a fixed memory."""
    keep_large_allocations_on_heap()
    graphs = [fold_batchnorm(capture(m.eval(), nodes)).module for m in models]
    size = int(batch_size) if batch_size else auto_chunk_size(models[0], inputs[:2])
    size = min(size, held_chunk_size(graphs[0], inputs, len(graphs), held_bytes))
    for xb in batches(inputs, size):
        xb = _as_input(xb)
        yield [g(xb) for g in graphs]


def held_chunk_size(graph: nn.Module, inputs: torch.Tensor, networks: int, held_bytes: int) -> int:
    """The most inputs per chunk whose hooked maps, for ``networks`` networks at once, fit ``held_bytes``
    (at least 1)."""
    with torch.inference_mode():
        out = graph(_as_input(inputs[:1]))
    per_input = sum(t.numel() * t.element_size() for t in out.values())
    return max(1, int(held_bytes) // max(1, per_input * int(networks)))


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
    return cross_correlations([model_a, model_b], [(0, 1)], nodes, inputs, batch_size, eps)[(0, 1)]


Pair = tuple[int, int]


@torch.no_grad()
def cross_correlations(
    models: Sequence[nn.Module],
    pairs: Sequence[Pair],
    nodes: Sequence[str],
    inputs: torch.Tensor,
    batch_size: int | None = None,
    eps: float = 1e-8,
    held_bytes: int = HELD_BYTES,
) -> dict[Pair, dict[str, torch.Tensor]]:
    """``cross_correlation`` for many pairs of ``models`` (indices into it) from one forward pass of each.

    Why: a correlation needs each network's activations once, not once per pair; all pairs of N networks
    cost N passes plus one product per pair instead of 2 passes per pair. Per-network sums are shared by
    its pairs; every pair's result equals ``cross_correlation`` of that pair bit for bit (same chunks, same
    operations, as long as ``held_bytes`` does not shrink the chunks). Only the networks in ``pairs`` run; all
    of them are left in eval mode. ``held_bytes`` bounds one chunk of every network's hooked maps."""
    pairs = [(int(i), int(j)) for i, j in pairs]
    bad = [p for p in pairs if not (0 <= p[0] < len(models) and 0 <= p[1] < len(models)) or p[0] == p[1]]
    if bad:
        raise ValueError(f"pairs {bad} are not pairs of two different models among {len(models)}")
    used = sorted({i for p in pairs for i in p})
    unit: dict[int, dict[str, list]] = {i: {} for i in used}
    prod: dict[Pair, dict[str, torch.Tensor | float]] = {p: {} for p in pairs}
    with torch.inference_mode():
        for outs in _chunked_outputs([models[i] for i in used], nodes, inputs, batch_size, held_bytes):
            by_model = {i: {k: _float(o[k]) for k in nodes} for i, o in zip(used, outs)}
            for i in used:
                for k in nodes:
                    s = unit[i].setdefault(k, [0.0, 0.0, 0])
                    s1, s2, m = _unit_sums(by_model[i][k])
                    s[0], s[1], s[2] = s[0] + s1, s[1] + s2, s[2] + m
            for i, j in pairs:
                for k in nodes:
                    prod[(i, j)][k] = prod[(i, j)].get(k, 0.0) + _product_sum(by_model[i][k], by_model[j][k])
    out: dict[Pair, dict[str, torch.Tensor]] = {}
    for i, j in pairs:
        out[(i, j)] = {}
        for k in nodes:
            (sa, saa, m), (sb, sbb, _) = unit[i][k], unit[j][k]
            ma, mb = sa / m, sb / m
            cov = prod[(i, j)][k] / m - torch.outer(ma, mb)
            sda, sdb = (saa / m - ma * ma).clamp_min(0).sqrt(), (sbb / m - mb * mb).clamp_min(0).sqrt()
            out[(i, j)][k] = cov / (torch.outer(sda, sdb) + eps)
    return out


def _samples(a: torch.Tensor) -> torch.Tensor:
    """(inputs × positions × channels) view of a map (no copy for channels_last); 2-D outputs as they are."""
    return a if a.dim() == 2 else a.movedim(1, -1).reshape(a.shape[0], -1, a.shape[1])


def _unit_sums(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Σa and Σa² per unit (float64) and the number of samples."""
    f64 = torch.float64
    if a.dim() == 2:
        return a.sum(0).to(f64), a.square().sum(0).to(f64), a.shape[0]
    A = _samples(a)
    return A.sum((0, 1)).to(f64), A.square().sum((0, 1)).to(f64), A.shape[0] * A.shape[1]


def _product_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ a·bᵀ (units × units, float64).

    Maps: one batched product per input over its positions, (positions × channels) views of the maps
    (no copy for channels_last), summed over inputs in float64 — one long float32 product over every
    position of the chunk costs ~15% less but loses a digit (~4e-6 in a correlation)."""
    if a.dim() == 2:
        return (a.T @ b).to(torch.float64)
    return torch.bmm(_samples(a).transpose(1, 2), _samples(b)).sum(0, dtype=torch.float64)
