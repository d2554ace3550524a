"""Curvature per block of parameters: the top eigenvalue and the trace of each diagonal Hessian block H[b, b].

Why per block: which layers are sharp is the question behind per-layer learning rates, pruning and quantization
budgets (PyHessian's most asked-for feature); the whole-model λ_max hides it. Each block's Hessian is the Hessian of
the loss restricted to that block (:func:`lsx.landscape.engine.subset.subset_loss`), so the routines are the
whole-model ones. The traces of blocks that partition the parameters add up to the whole trace.

Why the traces share probes: for a Rademacher v over all of θ, E[Σ_{i∈b} v_i (Hv)_i] = Σ_{i∈b} H_ii (E[v_i v_j] = δ_ij),
so one set of whole-model products gives every block's Hutchinson estimate at once — ``trace_samples`` products in
all instead of ``trace_samples`` per block (the variance of a block's estimate also carries its rows' products with
other blocks; its standard error says so). Only λ_max needs each block's own products.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..engine.memo import Memo, compute_now
from ..engine.subset import subset_loss
from .hessian import LossFn, hvp_function, rademacher, top_eigenpairs


@dataclass
class BlockCurvature:
    block: str
    num_tensors: int
    num_params: int
    lambda_max: float
    lambda_max_converged: bool
    trace: float
    trace_stderr: float
    trace_method: str  # "exact" (one product per coordinate: the block is no larger than the probe count) or "hutchinson"

    def row(self) -> dict[str, Any]:
        return asdict(self)


def exact_block_trace(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, dtype: torch.dtype, device) -> float:
    """Σ_i e_iᵀ H e_i with n Hessian-vector products (cheaper and exact when n ≤ the Hutchinson probe count)."""
    total = 0.0
    for i in range(n):
        e = torch.zeros(n, dtype=dtype, device=device)
        e[i] = 1
        total += float(hvp(e)[i])
    return total


def shared_probe_traces(
    loss_fn: LossFn, theta: torch.Tensor, indices: list[torch.Tensor], samples: int, seed: int = 0
) -> list[tuple[float, float]]:
    """(Hutchinson estimate of tr H[b, b], its standard error) for every block of flat coordinates ``indices[b]``,
    all from the same ``samples`` Rademacher probes over the whole of θ (one product each; see the module doc)."""
    if samples < 2:
        raise ValueError(f"trace_samples={samples}: a standard error needs at least 2 probes")
    owner = torch.full((theta.numel(),), len(indices), dtype=torch.long)  # last slot: in no block; on the CPU, with the sums
    for b, idx in enumerate(indices):
        owner[idx.cpu()] = b
    hvp = hvp_function(loss_fn, theta)
    g = torch.Generator().manual_seed(seed)
    per_probe = torch.zeros(samples, len(indices) + 1, dtype=torch.float64)
    for s in range(samples):
        v = rademacher(theta.numel(), g, theta)
        per_probe[s].index_add_(0, owner, (v * hvp(v)).double().cpu())
    est = per_probe[:, : len(indices)]
    mean, se = est.mean(0), est.std(0, correction=1) / samples**0.5
    return [(float(m), float(e)) for m, e in zip(mean, se)]


def block_curvature(
    loss_fn: LossFn,
    theta: torch.Tensor,
    name: str,
    index: torch.Tensor,
    num_tensors: int,
    trace_samples: int,
    seed: int = 0,
    shared_trace: tuple[float, float] | None = None,
) -> BlockCurvature:
    """λ_max (Lanczos) and trace of H[b, b] for the flat coordinates ``index`` of θ.

    The trace is exact (n products) when the block has at most ``trace_samples`` coordinates, else ``shared_trace``:
    Hutchinson's estimate and its standard error from the probes every large block shares
    (:func:`shared_probe_traces`, which :func:`blocks_curvature` computes once).
    """
    f, th = subset_loss(loss_fn, theta, index)
    n = th.numel()
    if n == 0:
        raise ValueError(f"block {name!r} has no parameters")
    if n == 1:  # a 1x1 block is its own eigenvalue
        lam = float(hvp_function(f, th)(torch.ones(1, dtype=th.dtype, device=th.device))[0])
        return BlockCurvature(name, num_tensors, 1, lam, True, lam, 0.0, "exact")
    top = top_eigenpairs(f, th, 1, "LA", seed=seed)
    if n <= trace_samples:
        tr, se, method = exact_block_trace(hvp_function(f, th), n, th.dtype, th.device), 0.0, "exact"
    elif shared_trace is not None:
        (tr, se), method = shared_trace, "hutchinson"
    else:
        raise ValueError(f"block {name!r} has {n} > trace_samples={trace_samples} coordinates: pass its shared_trace")
    return BlockCurvature(name, num_tensors, n, float(top.values[0]), bool(top.converged), float(tr), float(se), method)


def blocks_curvature(
    loss_fn: LossFn,
    theta: torch.Tensor,
    blocks: Mapping[str, tuple[torch.Tensor, int]],
    trace_samples: int,
    seed: int = 0,
    memo: Memo = compute_now,
) -> list[BlockCurvature]:
    """:func:`block_curvature` for every block (name → (flat indices, tensor count)); the traces of blocks larger
    than ``trace_samples`` from one set of shared probes (memo key ``block_traces``), then each block through ``memo``
    (key ``block_<i>``), so a killed job resumes after its last finished block."""
    if trace_samples < 2:
        raise ValueError(f"trace_samples={trace_samples}: a trace estimate with a standard error needs at least 2 probes")
    items = list(blocks.items())
    large = [i for i, (_, (idx, _)) in enumerate(items) if idx.numel() > trace_samples]
    shared: dict[int, tuple[float, float]] = {}
    if large:
        traces = memo(
            "block_traces",
            partial(shared_probe_traces, loss_fn, theta, [items[i][1][0] for i in large], trace_samples, seed),
        )
        shared = {i: (float(t[0]), float(t[1])) for i, t in zip(large, traces)}
    return [
        memo(f"block_{i}", partial(block_curvature, loss_fn, theta, name, idx, nt, trace_samples, seed, shared.get(i)))
        for i, (name, (idx, nt)) in enumerate(items)
    ]


def table_summary(rows: list[BlockCurvature], num_params: int) -> dict[str, Any]:
    """Scalars over the table: the sharpest block, the traces' sum and how much of the parameters the blocks cover."""
    lam = np.array([r.lambda_max for r in rows])
    covered = int(sum(r.num_params for r in rows))
    return {
        "blocks": len(rows),
        "blocks_sharpest": rows[int(np.argmax(lam))].block if len(rows) else None,
        "blocks_lambda_max": float(lam.max()) if len(rows) else float("nan"),
        "blocks_trace_sum": float(sum(r.trace for r in rows)),
        "blocks_num_params": covered,
        "blocks_cover_all": covered == int(num_params),
    }
