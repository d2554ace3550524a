"""Histograms of the weights of several checkpoints (Li et al. 2018, Fig. 3).

Why: Li et al. show that small-batch / weight-decay training changes the scale of the weights, which
is why unnormalized 1D plots mislead. All checkpoints share one set of bin edges so the histograms
compare directly; biases and BN parameters can be left out (``ignore='biasbn'``) as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from ..engine.flat import FlatParams
from .pca import trajectory_mask


@dataclass
class WeightHistograms:
    edges: np.ndarray  # (bins + 1,) shared by every checkpoint
    counts: dict[str, np.ndarray]  # label → (bins,) number of weights per bin
    density: dict[str, np.ndarray]  # label → (bins,) counts / (n · bin width): integrates to 1
    stats: dict[str, dict[str, float]]  # label → n, mean, std, mean_abs, min, max


def weight_values(theta: torch.Tensor | np.ndarray, flat: FlatParams | None = None, ignore: str = "biasbn") -> np.ndarray:
    """The entries of a flat checkpoint that count as weights (all of them for ``ignore='none'``)."""
    v = theta.detach().cpu().numpy() if isinstance(theta, torch.Tensor) else np.asarray(theta)
    v = v.reshape(-1)
    if flat is not None and flat.include_buffers and ignore == "none":
        v = v[: flat.num_params]  # running statistics are not weights
    return v[trajectory_mask(flat, v.size, ignore)] if ignore != "none" else v


def weight_histograms(
    thetas: Mapping[str, torch.Tensor | np.ndarray] | Sequence[torch.Tensor | np.ndarray],
    flat: FlatParams | None = None,
    ignore: str = "biasbn",
    bins: int = 100,
    value_range: tuple[float, float] | None = None,
) -> WeightHistograms:
    """Histograms of each checkpoint's weights on common bin edges (the joint min..max unless given)."""
    if int(bins) < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    items = dict(thetas) if isinstance(thetas, Mapping) else {f"checkpoint {i}": t for i, t in enumerate(thetas)}
    if not items:
        raise ValueError("no checkpoints given; pass a {label: flat θ} mapping or a list of flat θ")
    values = {k: weight_values(t, flat, ignore).astype(np.float64) for k, t in items.items()}
    for k, v in values.items():
        if v.size == 0:
            raise ValueError(f"{k}: no weights left (ignore={ignore!r})")
        if not np.isfinite(v).all():
            raise ValueError(f"{k}: weights contain NaN/inf")
    if value_range is None:
        lo, hi = min(float(v.min()) for v in values.values()), max(float(v.max()) for v in values.values())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
    else:
        lo, hi = map(float, value_range)
        if not lo < hi:
            raise ValueError(f"value_range must be (min, max) with min < max, got {value_range}")
    edges = np.linspace(lo, hi, int(bins) + 1)
    counts = {k: np.histogram(v, bins=edges)[0] for k, v in values.items()}
    width = np.diff(edges)
    density = {k: c / (c.sum() * width) if c.sum() else np.zeros_like(width) for k, c in counts.items()}
    stats = {
        k: dict(
            n=int(v.size),
            mean=float(v.mean()),
            std=float(v.std()),
            mean_abs=float(np.abs(v).mean()),
            min=float(v.min()),
            max=float(v.max()),
        )
        for k, v in values.items()
    }
    return WeightHistograms(edges, counts, density, stats)
