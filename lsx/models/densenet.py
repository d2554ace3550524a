"""CIFAR DenseNets (Huang et al. 2017): DenseNet-40-12 and DenseNet-BC-100-12 (Draxler et al. Table 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import pool_kernel, pooled
from .registry import DataShape, register


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = c_in
        if bottleneck:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 4 * growth, 1, bias=False)]
            c = 4 * growth
        layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1, bias=False)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    def __init__(self, depth: int, growth: int, bottleneck: bool, compression: float, shape: DataShape) -> None:
        super().__init__()
        per_block = (depth - 4) // 3 // (2 if bottleneck else 1)
        c = 2 * growth if bottleneck else 16
        layers: list[nn.Module] = [nn.Conv2d(shape.in_channels, c, 3, padding=1, bias=False)]
        h, w = shape.height, shape.width
        for block in range(3):
            for _ in range(per_block):
                layers.append(DenseLayer(c, growth, bottleneck))
                c += growth
            if block < 2:
                c_out = int(c * compression)
                layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c_out, 1, bias=False)]
                if h * w > 1:
                    layers.append(nn.AvgPool2d(pool_kernel(h, w)))
                    h, w = pooled(h, w)
                c = c_out
        layers += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, shape.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


@register("densenet40_12")
def densenet40_12(shape: DataShape, growth: int = 12) -> nn.Module:
    return DenseNet(40, growth, bottleneck=False, compression=1.0, shape=shape)


@register("densenet100_12_bc")
def densenet100_12_bc(shape: DataShape, growth: int = 12) -> nn.Module:
    return DenseNet(100, growth, bottleneck=True, compression=0.5, shape=shape)
