"""What lsx is compared with, re-written from the originals' published code (not copied).

- :func:`original_surface`: the loss-landscape code of Li et al. (tomgoldstein/loss-landscape), its
  ``net_plotter.set_weights`` + ``evaluation.eval_loss`` per grid point: every parameter is *replaced*
  by a new tensor ``w + dx·x + dy·y`` (``p.data = ...``), then ``net.eval()`` and a pass over a
  ``DataLoader`` (batch 128) under ``no_grad`` that accumulates ``loss.item()·batch`` and
  ``predicted.eq(targets).sum().item()``, as its ``crunch`` loop does for the train loss.
- :func:`loss_landscapes_plane`: the ``loss-landscapes`` PyPI package (3.0.x), ``planar_interpolation``
  with its ``Loss`` metric (one forward of the whole subset per point), run under ``no_grad`` (its
  docs do not ask for it; without it every point also builds an autograd graph). Its grid is off by one:
  even columns are evaluated after a step along the second direction (j = 1..steps), odd columns
  before it (j = steps−1..0), so :func:`loss_landscapes_points` lists the coordinates it really visits.
- :func:`pyhessian_top_eigenvalue`: PyHessian's ``hessian.eigenvalues(top_n=1)`` (Yao et al.): power
  iteration on the Hessian-vector product of a gradient built once with ``create_graph``; stops when
  the Rayleigh quotient changes by less than ``tol`` relative (default 1e-3, max 100 iterations).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


# ---------------------------------------------------------------- Li et al.'s loss-landscape code
def original_set_weights(net: nn.Module, weights: list[torch.Tensor], directions: list[list[torch.Tensor]], step) -> None:
    """net_plotter.set_weights for dir_type='weights' with two directions."""
    dx, dy = directions
    changes = [d0 * step[0] + d1 * step[1] for d0, d1 in zip(dx, dy)]
    for p, w, d in zip(net.parameters(), weights, changes):
        p.data = w + d.type(w.type())


def original_eval_loss(net: nn.Module, criterion: nn.Module, loader: DataLoader) -> tuple[float, float]:
    """evaluation.eval_loss for CrossEntropyLoss: mean loss and accuracy in percent."""
    correct, total_loss, total = 0, 0.0, 0
    net.eval()
    with torch.no_grad():
        for inputs, targets in loader:
            batch_size = inputs.size(0)
            total += batch_size
            outputs = net(inputs)
            loss = criterion(outputs, targets)
            total_loss += loss.item() * batch_size
            _, predicted = torch.max(outputs.data, 1)
            correct += predicted.eq(targets).sum().item()
    return total_loss / total, 100.0 * correct / total


def original_surface(net: nn.Module, directions: list[list[torch.Tensor]], coords: np.ndarray, x, y, batch: int = 128):
    """plot_surface.crunch for the train loss: set_weights + eval_loss at every coordinate."""
    weights = [p.data for p in net.parameters()]  # net_plotter.get_weights
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    criterion = nn.CrossEntropyLoss()
    losses, accs = np.zeros(len(coords)), np.zeros(len(coords))
    try:
        for count, coord in enumerate(coords):
            original_set_weights(net, weights, directions, coord)
            losses[count], accs[count] = original_eval_loss(net, criterion, loader)
    finally:
        for p, w in zip(net.parameters(), weights):
            p.data = w
    return losses, accs / 100.0


def per_parameter(flat, vec: torch.Tensor) -> list[torch.Tensor]:
    """A flat direction as the original code's list of per-parameter tensors (net.parameters() order)."""
    by_name = {e.name: vec[e.start : e.stop].view(e.shape).clone() for e in flat.entries}
    return [by_name[n] for n, _ in flat.model.named_parameters()]


# ---------------------------------------------------------------- the loss-landscapes package
def loss_landscapes_points(side: int, h: float, lo: float = -1.0) -> np.ndarray:
    """(side², 2) coordinates, in data_matrix[i][j] order, that planar_interpolation actually evaluates."""
    pts = []
    for i in range(side):
        js = range(1, side + 1) if i % 2 == 0 else range(side)
        pts += [(lo + i * h, lo + j * h) for j in js]
    return np.asarray(pts, dtype=np.float64)


def loss_landscapes_plane(model: nn.Module, flat, theta0, dirs, side: int, x, y, lo: float = -1.0, hi: float = 1.0):
    """The package's planar_interpolation over start = θ0 + lo·(d1 + d2), steps of (hi−lo)/(side−1)."""
    import loss_landscapes
    import loss_landscapes.metrics

    h = (hi - lo) / (side - 1)
    ends = []
    for c in ((0.0, 0.0), (side * h, 0.0), (0.0, side * h)):
        m = copy.deepcopy(model)
        fm = type(flat)(m)
        fm.set_(theta0 + (lo + c[0]) * dirs[0] + (lo + c[1]) * dirs[1])
        ends.append(m.eval())
    metric = loss_landscapes.metrics.Loss(F.cross_entropy, x, y)
    with torch.no_grad():
        out = loss_landscapes.planar_interpolation(*ends, metric, steps=side, deepcopy_model=True)
    return np.asarray(out, dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------- PyHessian
def pyhessian_top_eigenvalue(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
) -> tuple[float, int]:
    """(top eigenvalue, Hessian-vector products) as PyHessian's ``hessian(model, criterion, data=(x, y))``."""
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)  # loss.backward(create_graph=True); p.grad
    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]

    def normalization(vs):
        s = torch.sqrt(sum(float((u * u).sum()) for u in vs) * torch.ones(()))
        return [u / (s + 1e-6) for u in vs]

    v = normalization(v)
    eigenvalue, hvps = None, 0
    for _ in range(max_iter):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, only_inputs=True, retain_graph=True)
        hvps += 1
        tmp = float(sum((a * b).sum() for a, b in zip(hv, v)))  # group_product
        v = normalization([h.detach() for h in hv])
        if eigenvalue is None:
            eigenvalue = tmp
        elif abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
            break
        else:
            eigenvalue = tmp
    return eigenvalue, hvps
