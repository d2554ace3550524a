"""Two-layer MLP (hidden 128), the Xu et al. CIFAR-10 baseline."""

from __future__ import annotations

from torch import nn

from .layers import make_activation, scaled
from .registry import DataShape, register


@register("mlp")
def mlp(
    shape: DataShape, hidden: int = 128, depth: int = 2, activation: str = "relu", width: float = 1.0, dropout: float = 0.0
) -> nn.Module:
    """``depth`` linear layers: depth−1 hidden layers of ``hidden·width`` units and a linear classifier."""
    if depth < 1:
        raise ValueError(f"mlp depth must be >= 1, got {depth}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    n_in = shape.numel
    layers: list[nn.Module] = [nn.Flatten()]
    h = scaled(hidden, width)
    for _ in range(depth - 1):
        layers += [nn.Linear(n_in, h), make_activation(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        n_in = h
    layers.append(nn.Linear(n_in, shape.num_classes))
    return nn.Sequential(*layers)
