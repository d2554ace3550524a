"""PCA directions of an optimization trajectory (Li et al. 2018, Sec. 7).

The matrix M = [θ_0 − θ_n, …, θ_{n−1} − θ_n] is decomposed with an SVD (numpy; the matrix
has few rows, so the economy SVD of M Mᵀ-size is cheap even for large models). The top two
right singular vectors are the plane; explained variance ratios come from the singular values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .flat import FlatParams


@dataclass
class TrajectoryPCA:
    directions: np.ndarray            # (k, numel) unit vectors (zero on ignored entries)
    explained_variance_ratio: np.ndarray  # (r,) all components, descending
    coords: np.ndarray                # (n, k) projection of θ_i − θ_n
    off_plane_distance: np.ndarray    # (n,) ‖residual‖ of θ_i − θ_n outside the plane


def trajectory_pca(trajectory: torch.Tensor, flat: FlatParams, ignore: str = "biasbn", k: int = 2) -> TrajectoryPCA:
    """PCA of a (n, numel) trajectory relative to its last point (the final model)."""
    if trajectory.dim() != 2 or trajectory.shape[0] < 3:
        raise ValueError(f"need a trajectory of at least 3 checkpoints as an (n, numel) tensor, got {tuple(trajectory.shape)}")
    if trajectory.shape[1] != flat.numel:
        raise ValueError(f"trajectory vectors have {trajectory.shape[1]} entries, the model has {flat.numel}")
    if ignore not in ("biasbn", "none"):
        raise ValueError(f"unknown ignore policy {ignore!r}; valid: biasbn, none")
    traj = trajectory.detach().double().numpy()
    mask = np.ones(flat.numel, dtype=bool) if ignore == "none" else flat.mask(["weight"]).numpy()
    diffs = traj - traj[-1]
    M = diffs[:-1][:, mask]
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    var = s**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(k, vt.shape[0])
    dirs = np.zeros((k, flat.numel))
    dirs[:, mask] = vt[:k]
    coords = diffs @ dirs.T
    resid = diffs.copy()
    resid[:, ~mask] = 0.0
    resid -= coords @ dirs
    return TrajectoryPCA(dirs, ratio, coords, np.linalg.norm(resid, axis=1))
