"""Analytic 2D potentials with known minima and saddles: ground truth for minimum-energy-path code.

Why: on a network nobody knows the true saddle between two minima, so NEB/AutoNEB are checked
where the answer is known. Each potential is a torch function of a 2-vector (differentiable, any
dtype) that also accepts the ``step`` argument of NEB's ``loss_fn(theta, step)`` and ignores it.

The stationary points listed are literature values to a few decimals (Müller & Brown 1979);
:func:`refine_stationary_point` polishes them to machine precision by root finding on the
gradient, so tests compare against refined values, not against remembered digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.optimize import root

# Müller–Brown: V(x, y) = Σ_k A_k exp(a_k (x−x0_k)² + b_k (x−x0_k)(y−y0_k) + c_k (y−y0_k)²)
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_x0 = (1.0, 0.0, -0.5, -1.0)
_MB_y0 = (0.0, 0.5, 1.5, 1.0)


def muller_brown(theta: torch.Tensor, step: int | None = None) -> torch.Tensor:
    """The Müller–Brown potential at ``theta = (x, y)``; three minima, two saddles."""
    _check_2d(theta)
    x, y = theta[0], theta[1]
    total = theta.new_zeros(())
    for A, a, b, c, x0, y0 in zip(_MB_A, _MB_a, _MB_b, _MB_c, _MB_x0, _MB_y0):
        dx, dy = x - x0, y - y0
        total = total + A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
    return total


def double_well(theta: torch.Tensor, step: int | None = None, stiffness: float = 2.0) -> torch.Tensor:
    """V(x, y) = (x² − 1)² + k·y²: minima (±1, 0) at 0, saddle (0, 0) at 1 — exact by construction."""
    _check_2d(theta)
    x, y = theta[0], theta[1]
    return (x * x - 1.0) ** 2 + stiffness * y * y


def curved_valley(theta: torch.Tensor, step: int | None = None, stiffness: float = 10.0, height: float = 1.0) -> torch.Tensor:
    """V(x, y) = (x² − 1)² + k·(y − h(1 − x²))²: a double well whose valley floor bends up to y = h.

    Exact by construction: minima (±1, 0) at 0, saddle (0, h) at 1 (Hessian diag(−4, 2k)). The straight
    line between the minima runs along y = 0, through (0, 0) at 1 + k·h² — far above the saddle —
    so a path method must leave the line and bend with the valley (what AutoNEB's pivot insertion is for).
    """
    _check_2d(theta)
    x, y = theta[0], theta[1]
    return (x * x - 1.0) ** 2 + stiffness * (y - height * (1.0 - x * x)) ** 2


def _check_2d(theta: torch.Tensor) -> None:
    if theta.shape != (2,):
        raise ValueError(f"a 2D potential takes a point of shape (2,), got {tuple(theta.shape)}")


@dataclass(frozen=True)
class Potential2D:
    """A potential with its known stationary points (approximate for Müller–Brown, exact for the well)."""

    name: str
    fn: Callable[..., torch.Tensor]
    minima: tuple[tuple[float, float], ...]
    saddles: tuple[tuple[float, float], ...]
    minima_energies: tuple[float, ...]
    saddle_energies: tuple[float, ...]

    def __call__(self, theta: torch.Tensor, step: int | None = None) -> torch.Tensor:
        return self.fn(theta)

    def energy(self, point) -> float:
        return float(self.fn(torch.as_tensor(point, dtype=torch.float64)))

    def point(self, xy, dtype=torch.float64) -> torch.Tensor:
        return torch.as_tensor(xy, dtype=dtype)


MULLER_BROWN = Potential2D(
    name="muller_brown",
    fn=muller_brown,
    minima=((-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467)),
    saddles=((-0.822, 0.624), (0.212, 0.293)),
    minima_energies=(-146.70, -108.17, -80.77),
    saddle_energies=(-40.66, -72.25),
)

DOUBLE_WELL = Potential2D(
    name="double_well",
    fn=double_well,
    minima=((-1.0, 0.0), (1.0, 0.0)),
    saddles=((0.0, 0.0),),
    minima_energies=(0.0, 0.0),
    saddle_energies=(1.0,),
)

CURVED_VALLEY = Potential2D(
    name="curved_valley",
    fn=curved_valley,
    minima=((-1.0, 0.0), (1.0, 0.0)),
    saddles=((0.0, 1.0),),
    minima_energies=(0.0, 0.0),
    saddle_energies=(1.0,),
)

POTENTIALS = {p.name: p for p in (MULLER_BROWN, DOUBLE_WELL, CURVED_VALLEY)}


def gradient_and_hessian(fn: Callable[[torch.Tensor], torch.Tensor], point) -> tuple[np.ndarray, np.ndarray]:
    """Exact (autograd, float64) gradient and Hessian of a 2D potential at ``point``."""
    p = torch.as_tensor(point, dtype=torch.float64)
    g = torch.func.grad(fn)(p)
    h = torch.func.hessian(fn)(p)
    return g.numpy(), h.numpy()


def refine_stationary_point(fn: Callable[[torch.Tensor], torch.Tensor], guess, tol: float = 1e-12) -> tuple[np.ndarray, float]:
    """Solve ∇V = 0 near ``guess`` (scipy root with the exact Hessian as Jacobian); returns (point, energy)."""
    sol = root(
        lambda p: gradient_and_hessian(fn, p)[0],
        np.asarray(guess, dtype=np.float64),
        jac=lambda p: gradient_and_hessian(fn, p)[1],
        tol=tol,
    )
    if not sol.success:
        raise RuntimeError(f"no stationary point found near {guess}: {sol.message}")
    return sol.x, float(fn(torch.as_tensor(sol.x, dtype=torch.float64)))


def morse_index(fn: Callable[[torch.Tensor], torch.Tensor], point) -> int:
    """Number of negative Hessian eigenvalues: 0 at a minimum, 1 at a first-order saddle."""
    return int((np.linalg.eigvalsh(gradient_and_hessian(fn, point)[1]) < 0).sum())
