"""The loss barrier on the straight line between two networks, as Entezari et al. (2022) define it.

B(θ₁, θ₂) = max_α [ L(αθ₁ + (1−α)θ₂) − (αL(θ₁) + (1−α)L(θ₂)) ], α ∈ [0, 1]: the largest rise of the
loss above the chord between the endpoints' losses. Evaluated on a grid of α that must hold both
endpoints; the maximum over a grid is a lower bound of the continuous one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def barrier(alphas: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> float:
    """max over the grid of values(α) − ((1−α)·values(0) + α·values(1)); α=0 is θ_a, α=1 is θ_b."""
    a = np.asarray(alphas, dtype=float)
    v = np.asarray(values, dtype=float)
    if a.shape != v.shape or a.ndim != 1:
        raise ValueError(f"alphas and values must be 1-D of equal length, got shapes {a.shape} and {v.shape}")
    i0, i1 = np.flatnonzero(np.isclose(a, 0.0)), np.flatnonzero(np.isclose(a, 1.0))
    if not len(i0) or not len(i1) or a.min() < 0 or a.max() > 1:
        raise ValueError("the α grid must lie in [0, 1] and hold both endpoints 0 and 1")
    chord = (1.0 - a) * v[i0[0]] + a * v[i1[0]]
    return float(np.max(v - chord))


def alpha_grid(num: int) -> np.ndarray:
    """``num`` evenly spaced α in [0, 1], endpoints included."""
    if int(num) < 3:
        raise ValueError(f"the α grid needs at least 3 points (endpoints and one between), got {num}")
    return np.linspace(0.0, 1.0, int(num))
