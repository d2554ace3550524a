"""Directions in parameter space and their normalization (Li et al. 2018, Sec. 4).

A direction is a flat tensor in a :class:`~lsx.landscape.engine.flat.FlatParams` layout. Random
directions are drawn from a seeded generator so that (kind, seed, normalization, ignore)
is enough provenance to redraw them; jobs still store the vectors themselves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..engine.flat import FlatParams

NORMALIZATIONS = ("filter", "layer", "model", "none")
IGNORES = ("none", "biasbn")


def _check_choice(value: str, valid: Sequence[str], what: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def apply_ignore(direction: torch.Tensor, flat: FlatParams, ignore: str = "biasbn") -> torch.Tensor:
    """Zero the direction on biases and norm-layer parameters (and BN buffers) when ``ignore='biasbn'``."""
    _check_choice(ignore, IGNORES, "ignore policy")
    if ignore == "none":
        return direction
    out = direction.clone()
    out[flat.mask(["bias", "bn", "buffer"])] = 0
    return out


def normalize_direction(
    direction: torch.Tensor, theta: torch.Tensor, flat: FlatParams, norm: str = "filter", eps: float = 1e-10
) -> torch.Tensor:
    """Scale ``direction`` to the scale of ``theta``.

    - ``filter``: each filter (slice along dim 0 of every weight tensor) gets the norm of θ's
      filter; 1-D tensors (biases, BN) are scaled as one block, as in Li et al.
    - ``layer``: each tensor gets the norm of θ's tensor.
    - ``model``: the whole vector gets ‖θ‖.
    - ``none``: unchanged.
    """
    _check_choice(norm, NORMALIZATIONS, "direction normalization")
    if direction.shape != theta.shape or direction.numel() != flat.numel:
        raise ValueError(f"direction of size {direction.numel()} does not match the model's flat size {flat.numel}")
    if norm == "none":
        return direction.clone()
    if norm == "model":
        return direction * (theta.norm() / (direction.norm() + eps))
    out = direction.clone()
    for e in flat.entries:
        d = out[e.start : e.stop]
        t = theta[e.start : e.stop]
        if norm == "filter" and len(e.shape) > 1:
            d2 = d.view(e.shape[0], -1)
            t2 = t.view(e.shape[0], -1)
            d2.mul_(t2.norm(dim=1, keepdim=True) / (d2.norm(dim=1, keepdim=True) + eps))
        else:
            d.mul_(t.norm() / (d.norm() + eps))
    return out


def random_direction(
    flat: FlatParams,
    theta: torch.Tensor,
    seed: int,
    norm: str = "filter",
    ignore: str = "biasbn",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Gaussian direction drawn from ``seed`` (on CPU, so it is the same on any device), normalized.

    ``mask`` (bool over the layout: a parameter subset, lsx.landscape.engine.subset) keeps the direction to the
    selected entries: zero elsewhere, and there the same values as without a mask under filter, layer or no
    normalization (they are per tensor); ``model`` normalization scales it to ‖θ_S‖, the subset's own norm.
    """
    g = torch.Generator().manual_seed(int(seed))
    d = torch.randn(flat.numel, generator=g, dtype=torch.float64).to(theta.dtype).to(theta.device)
    if mask is not None:
        d = d * mask.to(d.dtype)
        theta = theta * mask.to(theta.dtype) if norm == "model" else theta
    d = apply_ignore(d, flat, ignore)
    d = normalize_direction(d, theta, flat, norm)
    return apply_ignore(d, flat, ignore)


def random_unit_direction(numel: int, seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """A uniformly random unit vector (Gaussian / its norm), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    d = torch.randn(numel, generator=g, dtype=torch.float64)
    return (d / d.norm()).to(dtype=dtype, device=device)


def direction_between(theta_from: torch.Tensor, theta_to: torch.Tensor) -> torch.Tensor:
    """The vector from one point to another (α=1 reaches ``theta_to``)."""
    if theta_from.shape != theta_to.shape:
        raise ValueError(
            f"the two checkpoints have different flat sizes ({theta_from.numel()} vs {theta_to.numel()}); "
            "they are not the same architecture"
        )
    return theta_to - theta_from


def unit_direction(direction: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``direction`` rescaled to norm ``scale`` in parameter space (no per-filter reweighting, which
    would turn a Hessian eigenvector into a different, non-eigen direction)."""
    n = float(direction.norm())
    if n == 0:
        raise ValueError("cannot normalize a zero direction")
    return direction * (float(scale) / n)


def hessian_eigen_directions(
    loss_fn, theta: torch.Tensor, k: int, which: str = "LA", tol: float = 1e-4, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, bool]:
    """The ``k`` Hessian eigenvectors with the largest (``LA``, Xu's P.E.) or smallest (``SA``, N.E.)
    eigenvalues, as unit rows, with their eigenvalues (ordered from the extreme inwards) and ARPACK's
    convergence flag."""
    from ..curvature.hessian import top_eigenpairs

    res = top_eigenpairs(loss_fn, theta, k, which, tol=tol, seed=seed)
    order = np.arange(len(res.values)) if which != "SA" else np.arange(len(res.values))[::-1]
    vecs = torch.as_tensor(np.ascontiguousarray(res.vectors[:, order].T), dtype=theta.dtype)
    return vecs / vecs.norm(dim=1, keepdim=True), np.asarray(res.values)[order], res.converged
