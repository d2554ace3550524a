"""PCA directions of an optimization trajectory (Li et al. 2018, Sec. 7).

Random directions are nearly orthogonal to an optimization path, so Li et al. plot the path on the
plane of the top principal components of M = [θ_0 − θ_n; …; θ_{n−1} − θ_n] (θ_n the final model).
Their code fits ``sklearn.decomposition.PCA`` to M, which centres the rows; ``center=False`` gives the
plain SVD of M instead.

How: the number of checkpoints n is small and the number of parameters large, so everything is done
in the n×n Gram matrix (accumulated over column blocks in float64: no n×numel float64 copy), and the
directions, projections and off-plane residuals come from one more blockwise pass. When the centred
matrix has fewer than k independent components (e.g. 3 checkpoints with ``center=True``), the plane is
completed by the trajectory's own remaining directions (variance ratio 0), so it still holds the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..engine.flat import FlatParams

_REL_TOL = 1e-12  # eigenvalues of the Gram matrix below this fraction of the largest count as zero


@dataclass
class TrajectoryPCA:
    directions: np.ndarray  # (k, numel) orthonormal, zero on ignored entries
    explained_variance_ratio: np.ndarray  # (r,) every component, descending, sums to 1
    coords: np.ndarray  # (n, k) projection of θ_i − θ_n on each direction
    off_plane_distance: np.ndarray  # (n,) ‖θ_i − θ_n − projection‖ over the PCA'd entries
    singular_values: np.ndarray  # (r,) of the (centred) matrix M
    mask: np.ndarray  # (numel,) entries that took part (weights only for ignore=biasbn)
    centered: bool

    @property
    def explained_variance_2d(self) -> float:
        return float(self.explained_variance_ratio[:2].sum())


def _as_matrix(trajectory: torch.Tensor | np.ndarray | Sequence) -> torch.Tensor:
    if isinstance(trajectory, (list, tuple)):
        trajectory = torch.stack(
            [torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t).reshape(-1) for t in trajectory]
        )
    t = torch.as_tensor(trajectory).detach().cpu()
    if t.dim() != 2:
        raise ValueError(f"a trajectory is an (n, numel) matrix of flat checkpoints, got shape {tuple(t.shape)}")
    return t


def trajectory_mask(flat: FlatParams | None, numel: int, ignore: str = "biasbn") -> np.ndarray:
    """Entries a trajectory analysis uses: all, or only conv/linear weights (``ignore='biasbn'``, as Li)."""
    if ignore not in ("biasbn", "none"):
        raise ValueError(f"unknown ignore policy {ignore!r}; valid: biasbn, none")
    if ignore == "none":
        return np.ones(numel, dtype=bool)
    if flat is None:
        raise ValueError("ignore='biasbn' needs the model's FlatParams to know which entries are weights")
    if flat.numel != numel:
        raise ValueError(f"trajectory vectors have {numel} entries, the model's flat layout has {flat.numel}")
    return flat.mask(["weight"]).cpu().numpy()


def trajectory_pca(
    trajectory: torch.Tensor | np.ndarray | Sequence,
    flat: FlatParams | None = None,
    ignore: str = "biasbn",
    k: int = 2,
    center: bool = True,
    block: int = 1 << 20,
) -> TrajectoryPCA:
    """PCA of a trajectory relative to its last point (the final model).

    ``trajectory``: (n, numel) checkpoints in one flat layout (tensor, array or list), n >= 3.
    ``ignore='biasbn'`` restricts the analysis to conv/linear weights (``flat`` tells which).
    Returns the k directions, every component's explained variance ratio, each checkpoint's
    coordinates on the directions and its distance off their span.
    """
    traj = _as_matrix(trajectory)
    n, numel = traj.shape
    if n < 3:
        raise ValueError(f"need a trajectory of at least 3 checkpoints, got {n}")
    if flat is not None and flat.numel != numel:
        raise ValueError(f"trajectory vectors have {numel} entries, the model's flat layout has {flat.numel}")
    if not 1 <= int(k) <= n - 1:
        raise ValueError(f"k={k} components: need 1 <= k <= n-1 = {n - 1} for {n} checkpoints")
    k = int(k)
    mask = trajectory_mask(flat, numel, ignore)
    cols = torch.as_tensor(np.flatnonzero(mask))
    if len(cols) == 0:
        raise ValueError("no entries left after ignoring biases/BN; use ignore='none'")
    m = n - 1  # rows of M: θ_i − θ_n for i < n

    def blocks():
        for s in range(0, len(cols), block):
            c = cols[s : s + block]
            sub = traj[:, c].double()
            yield s, c, (sub[:m] - sub[m]).numpy()

    gram = np.zeros((m, m))
    for _, _, mb in blocks():
        gram += mb @ mb.T
    if not np.isfinite(gram).all():
        raise ValueError("the trajectory has non-finite entries")
    trace = float(np.trace(gram))
    if trace <= 0:
        raise ValueError("all checkpoints are identical: the trajectory has no direction to analyse")

    # principal axes of the (centred) rows, as coefficients a in the row space: v = Mᵀ a
    C = np.eye(m) - (np.full((m, m), 1.0 / m) if center else 0.0)
    lam, U = np.linalg.eigh(C @ gram @ C)
    order = np.argsort(lam)[::-1]
    lam, U = np.clip(lam[order], 0.0, None), U[:, order]
    rank = int(np.sum(lam > _REL_TOL * max(lam[0], 1e-300)))
    total = lam[:rank].sum()
    ratio = lam / total if total > 0 else np.zeros_like(lam)
    ratio[rank:] = 0.0
    sing = np.sqrt(lam)
    leading = [C @ U[:, j] / sing[j] for j in range(min(k, rank))]
    A = np.stack(_complete_basis(leading, gram, k, trace), axis=1)  # (m, k), Aᵀ G A = I
    proj = gram @ A  # coordinates of the rows of M on the directions
    # deterministic signs: the checkpoint farthest along each axis has a positive coordinate
    signs = np.sign(proj[np.abs(proj).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    A, proj = A * signs, proj * signs
    coords = np.vstack([proj, np.zeros((1, k))])  # θ_n − θ_n = 0
    directions = np.zeros((k, numel))
    resid_sq = np.zeros(m)
    for _, c, mb in blocks():
        vb = A.T @ mb
        directions[:, c.numpy()] = vb
        resid_sq += ((mb - proj @ vb) ** 2).sum(axis=1)
    off = np.append(np.sqrt(resid_sq), 0.0)
    return TrajectoryPCA(directions, ratio, coords, off, sing, mask, bool(center))


def _complete_basis(A: list[np.ndarray], gram: np.ndarray, k: int, trace: float) -> list[np.ndarray]:
    """Extend G-orthonormal row-space coefficients A to k vectors with the trajectory's own leftover rows."""
    A = list(A)
    m = gram.shape[0]
    while len(A) < k:
        best, best_norm = None, 0.0
        for i in range(m):
            r = np.zeros(m)
            r[i] = 1.0
            for _ in range(2):  # twice: Gram-Schmidt loses orthogonality once
                for a in A:
                    r = r - (a @ gram @ r) * a
            nrm = float(r @ gram @ r)
            if nrm > best_norm:
                best, best_norm = r, nrm
        if best is None or best_norm <= _REL_TOL * trace:
            raise ValueError(
                f"the trajectory spans only {len(A)} independent direction(s); cannot build {k} PCA directions "
                "(save more checkpoints, or use fewer components)"
            )
        A.append(best / np.sqrt(best_norm))
    return A


def variance_captured(
    trajectory: torch.Tensor | np.ndarray | Sequence,
    directions: torch.Tensor | np.ndarray,
    mask: np.ndarray | None = None,
    center: bool = True,
    block: int = 1 << 20,
) -> float:
    """Fraction of the trajectory's variance (rows θ_i − θ_n, centred as in :func:`trajectory_pca`) that
    lies in the span of ``directions`` ((k, numel), orthonormalized here over the ``mask`` entries).

    Why (Li et al. Sec. 7.1): a random direction is nearly orthogonal to a low-dimensional path, so it
    captures almost none of its variation, while the top PCA directions capture most of it; the ratio
    of the two fractions is what makes random-direction trajectory plots fail (Fig. 8)."""
    traj = _as_matrix(trajectory)
    n, numel = traj.shape
    if n < 3:
        raise ValueError(f"need a trajectory of at least 3 checkpoints, got {n}")
    d = torch.as_tensor(np.asarray(directions) if not isinstance(directions, torch.Tensor) else directions).detach().cpu()
    d = d.reshape(-1, numel) if d.dim() == 1 else d
    if d.dim() != 2 or d.shape[1] != numel:
        raise ValueError(f"directions must be (k, {numel}) like the trajectory's rows, got shape {tuple(d.shape)}")
    cols = torch.as_tensor(np.flatnonzero(np.ones(numel, dtype=bool) if mask is None else mask))
    q, r = torch.linalg.qr(d[:, cols].double().T)  # (p, k) orthonormal basis of the directions' span
    if (r.diagonal().abs() <= _REL_TOL * max(float(r.diagonal().abs().max()), 1e-300)).any():
        raise ValueError("the directions are linearly dependent on the used entries (or zero there)")
    m = n - 1
    proj, total = np.zeros((m, q.shape[1])), np.zeros((m, m))
    for s in range(0, len(cols), block):
        c = cols[s : s + block]
        sub = traj[:, c].double()
        mb = sub[:m] - sub[m]
        proj += (mb @ q[s : s + block]).numpy()
        total += (mb @ mb.T).numpy()
    C = np.eye(m) - (np.full((m, m), 1.0 / m) if center else 0.0)
    denom = float(np.trace(C @ total @ C))
    if not denom > 0:
        raise ValueError("the trajectory has no variance to capture (all checkpoints identical)")
    return float(np.sum((C @ proj) ** 2) / denom)
