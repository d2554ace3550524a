"""SWA (weight averaging) vs prediction ensembling of snapshots (Fort & Jastrzebski, Sec. 4.5, Fig. 6).

Why both: averaging weights works when the snapshots lie in one convex-ish basin; when a high
maximal learning rate sends the cyclic snapshots into different "wedges", the weight average
falls between them (high loss) while averaging predictions still helps.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn


def snapshot_epochs(total_epochs: int, cycle_length: int, num_snapshots: int | None = None, burn_in_epochs: int = 0) -> list[int]:
    """Epochs at the low-LR end of each cycle after ``burn_in_epochs`` (the last ``num_snapshots`` of them).

    Why a burn-in: a snapshot from the first cycles is still far from any optimum, so its weight
    average or ensemble measures the approach, not the spread of the cyclic optima (Fort Fig. 6).
    """
    if cycle_length < 1:
        raise ValueError(f"cycle length must be >= 1 epoch, got {cycle_length}")
    if cycle_length > total_epochs:
        raise ValueError(f"cycle length {cycle_length} is longer than training ({total_epochs} epochs)")
    if not 0 <= burn_in_epochs < total_epochs:
        raise ValueError(
            f"burn_in_epochs must be in 0..{total_epochs - 1} (training has {total_epochs} epochs), got {burn_in_epochs}"
        )
    ends = [e for e in range(cycle_length, total_epochs + 1, cycle_length) if e > burn_in_epochs]
    if num_snapshots is not None:
        if num_snapshots < 1:
            raise ValueError(f"number of snapshots must be >= 1, got {num_snapshots}")
        if num_snapshots > len(ends):
            raise ValueError(
                f"{num_snapshots} snapshots requested but training has only {len(ends)} cycle ends after the "
                f"burn-in of {burn_in_epochs} epochs (cycle {cycle_length}, {total_epochs} epochs)"
            )
        ends = ends[-num_snapshots:]
    return ends


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([F.softmax(model(x[i : i + chunk]), dim=1) for i in range(0, len(x), chunk)])


def metrics_from_proba(p: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    nll = float(F.nll_loss(torch.log(p.clamp_min(1e-12)), y))
    return {"loss": nll, "acc": float((p.argmax(1) == y).float().mean())}


def weight_average(models: Sequence[nn.Module], bn_batches: Iterable[torch.Tensor] | None = None) -> nn.Module:
    """The SWA model (equal-weight average via AveragedModel), with BN statistics re-estimated."""
    if not models:
        raise ValueError("no snapshots to average")
    swa = AveragedModel(models[0])
    for m in models:
        swa.update_parameters(m)
    if bn_batches is not None and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in swa.modules()):
        update_bn(((x,) for x in bn_batches), swa)
    return swa.eval()


def compare_swa_and_ensemble(
    models: Sequence[nn.Module],
    test: tuple[torch.Tensor, torch.Tensor],
    bn_batches: Sequence[torch.Tensor] | None = None,
) -> dict[str, object]:
    """Per-snapshot, weight-average and prediction-ensemble test metrics, and the ensemble's advantage."""
    x, y = test
    probs = [predict_proba(m, x) for m in models]
    per = [metrics_from_proba(p, y) for p in probs]
    ens = metrics_from_proba(torch.stack(probs).mean(0), y)
    swa = metrics_from_proba(predict_proba(weight_average(models, bn_batches), x), y)
    return {
        "snapshots": per,
        "ensemble": ens,
        "swa": swa,
        "advantage_acc": ens["acc"] - swa["acc"],
        "advantage_loss": swa["loss"] - ens["loss"],
    }
