"""CIFAR ResNets (He et al. 2016, 6n+2 layers) with optional shortcuts and width multiplier (Li et al. Fig. 6–7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import scaled
from .registry import DataShape, register


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.use_shortcut = shortcut
        self.proj = None
        if shortcut and (stride != 1 or c_in != c_out):
            self.proj = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.use_shortcut:
            out = out + (x if self.proj is None else self.proj(x))
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, shape: DataShape, shortcut: bool = True, width: float = 1.0) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.stem = nn.Sequential(
            nn.Conv2d(shape.in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride, shortcut))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, shape.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _make(depth: int):
    def factory(shape: DataShape, shortcut: bool = True, width: float = 1.0) -> nn.Module:
        return CifarResNet(depth, shape, shortcut=shortcut, width=width)

    factory.__doc__ = f"ResNet-{depth} for CIFAR-sized inputs; shortcut=False gives the 'noshort' variant."
    return factory


for _depth in (20, 32, 44, 56, 110):
    register(f"resnet{_depth}")(_make(_depth))
