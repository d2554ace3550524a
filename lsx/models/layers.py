"""Small building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU, "sigmoid": nn.Sigmoid}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]()


def scaled(channels: int, width: float) -> int:
    """Channels times a width multiplier, never below 1."""
    return max(1, int(round(channels * width)))


def pool_kernel(height: int, width: int) -> tuple[int, int]:
    """2x2 pooling, except along an axis that is already 1 pixel (1-D signals, tiny maps)."""
    return (2 if height >= 2 else 1, 2 if width >= 2 else 1)


def pooled(height: int, width: int) -> tuple[int, int]:
    kh, kw = pool_kernel(height, width)
    return height // kh, width // kw
