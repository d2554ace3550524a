"""AutoNEB (Draxler et al. 2018, Algorithm 2): NEB cycles that add pivots where the path needs them.

Why: a few pivots relax cheaply but cut corners over bumps between them; many pivots from the
start waste compute where the path is already flat. After each NEB cycle, ``num_between`` (9)
points between every pair of neighbouring pivots are evaluated; where a point's loss exceeds
the straight line between the two pivots' losses by at least ``insert_fraction`` (20%) of the
path's energy range, a pivot is inserted at the point of that segment that exceeds the line the
most (as the authors' code does: a point that is high only because the segment climbs is no bump).
The energy range is max − min over the *pivots* (the authors' torch-autoneb ``highest`` rule): a
bump between two pivots is what the pivots miss, so it must not inflate the range it is judged by
(with the range over all points, a path whose only high point lies between pivots could never
qualify — a curved valley cut by the straight line was left with no new pivot).

The saddle estimate is the maximum of the densely interpolated path (pivots and the points between
them), an upper bound on the best walkable path's barrier; the pivots' maximum alone lies below the
true saddle when two pivots straddle it and is kept under the name ``pivot_saddle_energy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .neb import LossFn, OptimizerFactory, arc_lengths, check_path, linear_path, neb

#: The paper's 14 cycles as (steps, learning rate).
PAPER_SCHEDULE: tuple[tuple[int, float], ...] = (
    ((1000, 0.1),) * 4 + ((2000, 0.1),) * 2 + ((1000, 0.01),) * 4 + ((1000, 0.001),) * 4
)


def paper_schedule(step_scale: float = 1.0, lr_scale: float = 1.0) -> list[tuple[int, float]]:
    """The paper's schedule with steps × ``step_scale`` (at least 1 each) and learning rates × ``lr_scale``.

    Scale steps down for smoke runs (e.g. 0.01 → 10-20 steps a cycle); ``lr_scale`` adapts the rates to a
    loss of another scale (e.g. an analytic potential whose gradients are ~100x a network's).
    """
    if not step_scale > 0 or not lr_scale > 0:
        raise ValueError(f"step_scale and lr_scale must be > 0, got {step_scale} and {lr_scale}")
    return [(max(1, int(round(s * step_scale))), lr * lr_scale) for s, lr in PAPER_SCHEDULE]


def check_schedule(schedule: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """A non-empty list of (steps >= 1, lr > 0) cycles."""
    cycles = [tuple(c) for c in (schedule or [])]
    if not cycles:
        raise ValueError("the AutoNEB schedule has no cycles; give a list of (steps, lr), e.g. paper_schedule()")
    for i, c in enumerate(cycles):
        if len(c) != 2 or int(c[0]) != c[0] or c[0] < 1 or not c[1] > 0:
            raise ValueError(f"cycle {i} is {c}; each cycle must be (steps >= 1 integer, lr > 0)")
    return [(int(s), float(lr)) for s, lr in cycles]


# ---------------------------------------------------------------------------------------------- dense path
def dense_path(pivots: torch.Tensor, num_between: int) -> tuple[torch.Tensor, np.ndarray]:
    """Pivots plus ``num_between`` equally spaced points on each segment, in path order.

    Returns (points of shape ((n−1)(num_between+1)+1, d), positions) where a position is
    segment index + fraction, so pivots sit at 0, 1, …, n−1.
    """
    check_path(pivots)
    if num_between < 0:
        raise ValueError(f"num_between must be >= 0, got {num_between}")
    n = pivots.shape[0]
    t = torch.arange(num_between + 1, dtype=torch.float64) / (num_between + 1)
    a, b = pivots[:-1].to(torch.float64), pivots[1:].to(torch.float64)
    seg = a[:, None, :] + t[None, :, None] * (b - a)[:, None, :]
    points = torch.cat([seg.reshape(-1, pivots.shape[1]), pivots[-1:].to(torch.float64)]).to(pivots.dtype)
    positions = (np.arange(n - 1)[:, None] + t.numpy()[None, :]).reshape(-1)
    return points, np.concatenate([positions, [n - 1.0]])


def between_points(pivots: torch.Tensor, num_between: int) -> torch.Tensor:
    """Only the interior points of each segment: (n−1, num_between, d)."""
    points, _ = dense_path(pivots, num_between)
    n, d = pivots.shape
    return points[:-1].reshape(n - 1, num_between + 1, d)[:, 1:]


def evaluate_path(
    pivots: torch.Tensor,
    eval_fn: Callable[[torch.Tensor], dict[str, float]],
    num_between: int = 9,
) -> dict[str, np.ndarray]:
    """``eval_fn`` (e.g. full train/test loss and error) along the dense path.

    Returns arrays ``position`` (pivot-index units), ``arc_length`` (normalized to [0, 1]),
    ``is_pivot`` and one array per key of ``eval_fn``'s dict.
    """
    points, positions = dense_path(pivots, num_between)
    rows = [eval_fn(p) for p in points]
    keys = list(rows[0]) if rows else []
    out: dict[str, np.ndarray] = {
        "position": positions,
        "arc_length": _normalized(arc_lengths(points)),
        "is_pivot": np.isclose(positions, np.round(positions)),
    }
    for k in keys:
        out[k] = np.array([float(r[k]) for r in rows])
    return out


def _normalized(cum: np.ndarray) -> np.ndarray:
    return cum / cum[-1] if cum[-1] > 0 else cum


# ---------------------------------------------------------------------------------------------- insertion
def find_insertions(
    pivot_energies,
    between_energies,
    insert_fraction: float = 0.2,
) -> list[tuple[int, int]]:
    """Where to add pivots: (segment index, index of the between point) pairs, in path order.

    Segment k (pivots k, k+1) gets a pivot when some between point's energy exceeds the linear
    interpolation of the two pivot energies by at least ``insert_fraction`` × (max − min of the finite
    pivot energies; the authors' rule); the pivot goes to the point of largest excess. Non-finite
    points are ignored. A path whose pivots all have the same energy uses the range over all points.
    """
    e_piv = np.asarray(pivot_energies, dtype=np.float64)
    e_bet = np.atleast_2d(np.asarray(between_energies, dtype=np.float64))
    if e_bet.shape[0] != e_piv.shape[0] - 1:
        raise ValueError(f"{e_bet.shape[0]} segments of between energies for {e_piv.shape[0]} pivots")
    if not 0 <= insert_fraction:
        raise ValueError(f"insert_fraction must be >= 0, got {insert_fraction}")
    m = e_bet.shape[1]
    if m == 0:
        return []
    energy_range = _finite_range(e_piv)
    if energy_range <= 0:  # flat pivots (e.g. two equal minima and a pivot at the same level)
        energy_range = _finite_range(np.concatenate([e_piv, e_bet.ravel()]))
    if energy_range <= 0:
        return []
    excess = segment_excess(e_piv, e_bet)
    out = []
    for k in range(e_bet.shape[0]):
        if excess[k].max() > 0 and excess[k].max() >= insert_fraction * energy_range:
            out.append((k, int(np.argmax(excess[k]))))
    return out


def _finite_range(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max() - finite.min()) if finite.size else 0.0


def segment_excess(pivot_energies, between_energies) -> np.ndarray:
    """Energy of each between point minus the linear interpolation of its segment's pivots (−inf if not finite)."""
    e_piv = np.asarray(pivot_energies, dtype=np.float64)
    e_bet = np.atleast_2d(np.asarray(between_energies, dtype=np.float64))
    m = e_bet.shape[1]
    t = np.arange(1, m + 1) / (m + 1)
    with np.errstate(invalid="ignore", over="ignore"):
        linear = e_piv[:-1, None] * (1 - t)[None] + e_piv[1:, None] * t[None]
        excess = e_bet - linear
    return np.where(np.isfinite(excess), excess, -np.inf)


def insert_pivots(pivots: torch.Tensor, insertions: Sequence[tuple[int, int]], num_between: int) -> torch.Tensor:
    """The path with a new pivot at between point j of segment k for every (k, j) (at most one per segment)."""
    if not insertions:
        return pivots.clone()
    segs = [k for k, _ in insertions]
    if len(set(segs)) != len(segs):
        raise ValueError(f"at most one insertion per segment, got segments {segs}")
    mids = between_points(pivots, num_between)
    by_seg = dict(insertions)
    rows = []
    for k in range(pivots.shape[0]):
        rows.append(pivots[k])
        if k in by_seg:
            rows.append(mids[k, by_seg[k]])
    return torch.stack(rows)


# ---------------------------------------------------------------------------------------------- AutoNEB
@dataclass
class MEP:
    """A minimum energy path estimate between two minima."""

    pivots: torch.Tensor  # (n, d), end points included
    energies: np.ndarray  # ``energy_fn`` at the pivots
    pivot_saddle_index: int  # the highest pivot
    between_energies: np.ndarray  # (n−1, num_between) at the final check (max may exceed the pivots')
    cycles: list[dict] = field(default_factory=list)
    nan_count: int = 0

    @property
    def num_between(self) -> int:
        return int(self.between_energies.shape[1]) if self.between_energies.ndim == 2 else 0

    @property
    def dense_energies(self) -> np.ndarray:
        """Energies along the dense path in path order (pivots and between points, as :func:`dense_path`)."""
        n, m = len(self.energies), self.num_between
        out = np.empty((n - 1) * (m + 1) + 1)
        for k in range(n - 1):
            out[k * (m + 1)] = self.energies[k]
            out[k * (m + 1) + 1 : (k + 1) * (m + 1)] = self.between_energies[k]
        out[-1] = self.energies[-1]
        return out

    @property
    def saddle_energy(self) -> float:
        """Max over the dense path (pivots and between points): an upper bound on this path's barrier top."""
        return _finite_max(self.energies, self.between_energies)

    dense_max_energy = saddle_energy  # older name

    @property
    def saddle_point(self) -> torch.Tensor:
        """The point of the dense path where :attr:`saddle_energy` is attained."""
        e = np.where(np.isfinite(self.dense_energies), self.dense_energies, -np.inf)
        return dense_path(self.pivots, self.num_between)[0][int(np.argmax(e))]

    @property
    def barrier(self) -> float:
        """Dense saddle energy above the higher end point (the paper's barrier height)."""
        return float(self.saddle_energy - max(self.energies[0], self.energies[-1]))

    @property
    def pivot_saddle_energy(self) -> float:
        """Max over the pivots only (a lower estimate: pivots may straddle the saddle)."""
        return float(self.energies[self.pivot_saddle_index])

    @property
    def pivot_barrier(self) -> float:
        """Pivot-only saddle energy above the higher end point."""
        return float(self.pivot_saddle_energy - max(self.energies[0], self.energies[-1]))

    @property
    def pivot_saddle_point(self) -> torch.Tensor:
        return self.pivots[self.pivot_saddle_index]


def auto_neb(
    loss_fn: LossFn,
    start: torch.Tensor,
    end: torch.Tensor,
    schedule: Sequence[tuple[int, float]],
    *,
    num_pivots: int = 3,
    energy_fn: Callable[[torch.Tensor], float] | None = None,
    insert_fraction: float = 0.2,
    num_between: int = 9,
    max_pivots: int | None = None,
    optimizer: OptimizerFactory | None = None,
    weight_decay: float = 0.0,
    log_every: int = 0,
    on_cycle: Callable[[int, torch.Tensor, dict], None] | None = None,
) -> MEP:
    """Run the NEB cycles of ``schedule`` from the straight line with ``num_pivots`` interior pivots.

    ``energy_fn(theta) -> float`` judges insertions and gives the reported energies (pass the loss on a
    fixed evaluation set for networks); by default it is ``loss_fn(theta, 0)`` under no_grad. The global
    step index runs on across cycles, so a batch-cycling ``loss_fn`` keeps cycling. No insertion follows
    the last cycle (nothing would relax the new pivots), but its check is reported in ``between_energies``.
    ``max_pivots`` caps the path length (largest excess inserted first). ``on_cycle(i, pivots, log)`` is
    called after every cycle, e.g. to save a checkpoint.
    """
    cycles = check_schedule(schedule)
    if start.shape != end.shape:
        raise ValueError(
            f"end points have different sizes ({start.numel()} vs {end.numel()}); they are not the same architecture"
        )
    if num_pivots < 1:
        raise ValueError(f"AutoNEB needs at least 1 interior pivot to start, got {num_pivots}")
    if max_pivots is not None and max_pivots < num_pivots + 2:
        raise ValueError(f"max_pivots={max_pivots} is below the starting path's {num_pivots + 2} pivots")
    if energy_fn is None:

        def energy_fn(theta: torch.Tensor) -> float:
            with torch.no_grad():
                return float(loss_fn(theta, 0))

    pivots = linear_path(start.detach(), end.detach(), num_pivots)
    step = 0
    log: list[dict] = []
    nan_total = 0
    e_piv = e_bet = None
    for c, (steps, lr) in enumerate(cycles):
        res = neb(
            loss_fn, pivots, steps, lr, optimizer=optimizer, weight_decay=weight_decay, start_step=step, log_every=log_every
        )
        step += steps
        nan_total += res.nan_count
        pivots = res.pivots
        e_piv = np.array([energy_fn(p) for p in pivots], dtype=np.float64)
        e_bet = np.array([[energy_fn(q) for q in seg] for seg in between_points(pivots, num_between)], dtype=np.float64).reshape(
            len(pivots) - 1, num_between
        )
        last = c == len(cycles) - 1
        inserted = [] if last else find_insertions(e_piv, e_bet, insert_fraction)
        if max_pivots is not None and len(pivots) + len(inserted) > max_pivots:
            inserted = _largest_excess(inserted, e_piv, e_bet, max(0, max_pivots - len(pivots)))
        entry = {
            "cycle": c,
            "steps": steps,
            "lr": lr,
            "end_step": step,
            "num_pivots": len(pivots),
            "pivot_saddle_energy": float(np.nanmax(e_piv)) if np.isfinite(e_piv).any() else float("nan"),
            "saddle_energy": _finite_max(e_piv, e_bet),
            "dense_max_energy": _finite_max(e_piv, e_bet),
            "inserted": len(inserted),
            "nan_count": res.nan_count,
            "nan_steps": res.nan_steps[:20],
            "neb_log": res.log,
        }
        log.append(entry)
        if inserted:
            pivots = insert_pivots(pivots, inserted, num_between)
        if on_cycle is not None:
            on_cycle(c, pivots, entry)
    if e_piv is None or e_bet is None:  # check_schedule() gives at least one cycle
        raise RuntimeError("AutoNEB ran no cycle")
    finite = np.where(np.isfinite(e_piv), e_piv, -np.inf)
    idx = int(np.argmax(finite))
    return MEP(pivots=pivots, energies=e_piv, pivot_saddle_index=idx, between_energies=e_bet, cycles=log, nan_count=nan_total)


def _finite_max(*arrays: np.ndarray) -> float:
    e = np.concatenate([np.ravel(a) for a in arrays])
    e = e[np.isfinite(e)]
    return float(e.max()) if e.size else float("nan")


def _largest_excess(inserted, e_piv, e_bet, keep: int) -> list[tuple[int, int]]:
    excess = segment_excess(e_piv, e_bet)
    best = sorted(inserted, key=lambda kj: -excess[kj[0]].max())[:keep]
    return sorted(best)
