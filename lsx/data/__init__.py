"""Data modules by name, so configs can say ``data=digits``."""

from __future__ import annotations

from .base import LandscapeSubset, TensorDataModule
from .embedded import DigitsDataModule, MNIST1DDataModule, SyntheticDataModule
from .torchvision_sets import DatasetUnavailable, TorchvisionDataModule

_EMBEDDED = {"digits": DigitsDataModule, "mnist1d": MNIST1DDataModule, "synthetic": SyntheticDataModule}
_TORCHVISION = ("cifar10", "cifar100", "mnist", "fashion_mnist")
DATASETS = tuple(_EMBEDDED) + _TORCHVISION


def build_datamodule(name: str | None, **kwargs) -> TensorDataModule:
    """The data module for ``name``, or for any dataset ``kwargs['_target_']`` builds (lsx.data.custom);
    an unknown name lists the valid ones."""
    if kwargs.get("_target_"):
        from .custom import DatasetDataModule

        target = dict(kwargs, **({"name": name} if name else {}))
        lsx_keys = {k: v for k, v in kwargs.items() if k in _lsx_keys()}
        return DatasetDataModule(target, **lsx_keys)
    if name in _EMBEDDED:
        return _EMBEDDED[name](**kwargs)
    if name in _TORCHVISION:
        return TorchvisionDataModule(name, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")


def _lsx_keys() -> set[str]:
    from .custom import _LSX_KEYS

    return _LSX_KEYS - {"_target_", "name"}


__all__ = ["DATASETS", "DatasetUnavailable", "LandscapeSubset", "TensorDataModule", "build_datamodule"]
