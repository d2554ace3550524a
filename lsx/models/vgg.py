"""VGG-9 with BatchNorm (Li et al. Fig. 2–5): 7 conv layers + 2 fully connected."""

from __future__ import annotations

from torch import nn

from .layers import pool_kernel, pooled, scaled
from .registry import DataShape, register

_VGG9 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, "M")


@register("vgg9")
def vgg9(shape: DataShape, width: float = 1.0, dropout: float = 0.0) -> nn.Module:
    """Pools are skipped along axes that are already 1 pixel, so small embedded images work too."""
    layers: list[nn.Module] = []
    c_in, h, w = shape.in_channels, shape.height, shape.width
    for v in _VGG9:
        if v == "M":
            if h * w > 1:
                layers.append(nn.MaxPool2d(pool_kernel(h, w)))
                h, w = pooled(h, w)
            continue
        c_out = scaled(v, width)
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        c_in = c_out
    hidden = scaled(512, width)
    layers += [nn.Flatten(), nn.Linear(c_in * h * w, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, shape.num_classes))
    return nn.Sequential(*layers)
