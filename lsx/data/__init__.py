"""Data modules by name, so configs can say ``data=digits``."""
from __future__ import annotations

from .base import LandscapeSubset, TensorDataModule
from .embedded import DigitsDataModule, MNIST1DDataModule, SyntheticDataModule
from .torchvision_sets import DatasetUnavailable, TorchvisionDataModule

_EMBEDDED = {"digits": DigitsDataModule, "mnist1d": MNIST1DDataModule, "synthetic": SyntheticDataModule}
_TORCHVISION = ("cifar10", "cifar100", "mnist", "fashion_mnist")
DATASETS = tuple(_EMBEDDED) + _TORCHVISION


def build_datamodule(name: str, **kwargs) -> TensorDataModule:
    """The data module for ``name``; an unknown name lists the valid ones."""
    if name in _EMBEDDED:
        return _EMBEDDED[name](**kwargs)
    if name in _TORCHVISION:
        return TorchvisionDataModule(name, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "DatasetUnavailable", "LandscapeSubset", "TensorDataModule", "build_datamodule"]
