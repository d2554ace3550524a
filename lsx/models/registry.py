"""Model registry: every architecture is built from config by name.

Why a registry: configs name models as strings, tests are generated for every entry,
and an unknown name lists the valid ones instead of failing deep in a factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class DataShape:
    """What a model must adapt to: input channels, spatial size (height x width) and classes.

    1-D signals (MNIST-1D) are 1 x L images, so every architecture runs on them too.
    """

    in_channels: int
    height: int
    width: int
    num_classes: int

    @property
    def numel(self) -> int:
        return self.in_channels * self.height * self.width


_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, in_channels: int, image_size: int | tuple[int, int], num_classes: int, **kwargs) -> nn.Module:
    """Build a registered model for data of the given shape; unknown names and kwargs list valid choices.

    ``image_size`` is the side of a square image or a (height, width) pair.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(available_models())}")
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    shape = DataShape(int(in_channels), int(h), int(w), int(num_classes))
    try:
        return _REGISTRY[name](shape, **kwargs)
    except TypeError as err:
        import inspect

        params = [p for p in inspect.signature(_REGISTRY[name]).parameters if p != "shape"]
        raise ValueError(f"bad options for model {name!r}: {err}; valid options: {', '.join(params)}") from None
