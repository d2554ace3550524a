"""Several grid points per forward pass: torch.func.vmap over stacked parameter sets (for GPUs).

Why: a small model on a GPU leaves most of the device idle at one point per forward pass (kernel
launches dominate). Stacking the parameters of P points and vmapping ``functional_call`` over them runs
P points in one pass of P-times-larger kernels. On a CPU the per-point loop is already at its forward
floor, so the evaluator uses this only where asked (``points_per_pass``), by default only on CUDA.
BatchNorm runs in eval mode with the model's running statistics (``keep``) or with statistics that move
with the direction (``states``, stacked like the parameters); ``upbn`` needs a train-mode pass per
point and is not batched.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from .bn_policy import floors_by_buffer_name


@torch.inference_mode()
def evaluate_batched(
    ev,
    theta0: torch.Tensor,
    dirs: torch.Tensor,
    pts: np.ndarray,
    todo: Sequence[int],
    points_per_pass: int,
    on_point: Callable[[int, dict[str, float]], None] | None = None,
    tick: Callable[[int | None], None] | None = None,
) -> dict[str, np.ndarray]:
    """Metrics at θ0 + pts[i] @ dirs for i in ``todo``, ``points_per_pass`` points per vmapped forward.

    ``ev`` is an :class:`~lsx.landscape.engine.evaluator.Evaluator` (its model, flat layout, chunked data).
    """
    if ev.bn_policy == "upbn" and ev._bn_layers:
        raise ValueError("points_per_pass > 1 cannot re-estimate BN statistics per point (bn_policy='upbn'); use 1")
    model, flat = ev.model, ev.flat
    names = [e.name for e in flat.entries]
    fixed = {n: b for n, b in model.named_buffers() if n not in set(names)}
    dtype = flat.dtype
    theta64 = theta0.detach().to(ev.device, torch.float64)
    dirs64 = dirs.detach().to(ev.device, torch.float64)
    c_all = torch.as_tensor(pts, dtype=torch.float64, device=ev.device)
    results = {m: np.full(len(pts), np.nan) for m in ev.metric_names}

    def one_point(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**params, **fixed}, (x,))

    batched = vmap(one_point, in_dims=(0, None))
    done = 0
    for start in range(0, len(todo), points_per_pass):
        idx = list(todo[start : start + points_per_pass])
        thetas = (theta64 + c_all[idx] @ dirs64).to(dtype)  # (P, numel), formed in float64
        params = {e.name: thetas[:, e.start : e.stop].reshape(len(idx), *e.shape) for e in flat.entries}
        if ev.bn_policy == "states":  # extrapolated variances: the evaluator's floor (bn_policy.EXTRAPOLATED_BN)
            floors = floors_by_buffer_name(ev.model, ev.var_floor)
            for e in flat.entries:
                if e.kind == "buffer" and e.name.endswith("running_var"):
                    f = floors.get(e.name, 0.0)
                    params[e.name] = (
                        torch.maximum(params[e.name], f.to(params[e.name]))
                        if isinstance(f, torch.Tensor)
                        else params[e.name].clamp(min=float(f))
                    )
        for split in ev.sets:
            n = len(ev.sets[split][1])
            loss_sum = torch.zeros(len(idx), dtype=torch.float64, device=ev.device)
            correct = torch.zeros(len(idx), dtype=torch.long, device=ev.device)
            for xb, yb in ev._chunked[split]:
                logits = batched(params, xb.contiguous()).float()  # (P, B, classes); NCHW: vmap has no channels_last pooling rule
                ev.forward_passes += 1
                loss = F.cross_entropy(logits.flatten(0, 1), yb.repeat(len(idx)), reduction="none")
                loss_sum += loss.view(len(idx), -1).double().sum(1)
                correct += (logits.argmax(-1) == yb).sum(1)
            results[f"{split}_loss"][idx] = (loss_sum / n).cpu().numpy()
            results[f"{split}_acc"][idx] = (correct.double() / n).cpu().numpy()
        for i in idx:
            if on_point is not None:
                on_point(i, {k: float(results[k][i]) for k in results})
        done += len(idx)
        if tick is not None:
            tick(done)
    return results
