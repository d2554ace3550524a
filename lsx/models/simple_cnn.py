"""SimpleCNN of Fort & Jastrzebski: 3x3 convs with 16/32/32 channels, 2x2 pooling, tanh."""

from __future__ import annotations

from torch import nn

from .layers import make_activation, pool_kernel, pooled, scaled
from .registry import DataShape, register


@register("simple_cnn")
def simple_cnn(
    shape: DataShape,
    channels: tuple[int, ...] = (16, 32, 32),
    activation: str = "tanh",
    width: float = 1.0,
    dropout: float = 0.0,
) -> nn.Module:
    """Conv(3x3)→act→MaxPool(2) per stage while the map has more than one pixel, then a linear head."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    c_in, h, w = shape.in_channels, shape.height, shape.width
    for c in channels:
        c_out = scaled(c, width)
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), make_activation(activation)]
        if h * w > 1:
            layers.append(nn.MaxPool2d(pool_kernel(h, w)))
            h, w = pooled(h, w)
        if dropout:
            layers.append(nn.Dropout(dropout))
        c_in = c_out
    layers += [nn.Flatten(), nn.Linear(c_in * h * w, shape.num_classes)]
    return nn.Sequential(*layers)
