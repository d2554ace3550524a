"""CIFAR-10/100, MNIST and Fashion-MNIST from a local root through torchvision.datasets.

torchvision is optional (on these CPU machines PyPI's torchvision is a CUDA build that
breaks imports), so it is imported only here, only when such a dataset is asked for, and
every failure becomes one message that says how to get the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsx.utils.errors import DatasetUnavailable

from .base import Arrays, TensorDataModule

_SETS = {
    "cifar10": ("CIFAR10", 10),
    "cifar100": ("CIFAR100", 100),
    "mnist": ("MNIST", 10),
    "fashion_mnist": ("FashionMNIST", 10),
}


def _import_torchvision_datasets():
    try:
        import torchvision.datasets as tvd  # noqa: PLC0415
    except Exception as err:  # ImportError, or RuntimeError from a CUDA build on a CPU torch
        raise DatasetUnavailable(
            f"torchvision is missing or broken ({type(err).__name__}: {err}). Install the GPU extra "
            "(`pip install -e .[vision]` with a torchvision matching your torch), or use an embedded "
            "dataset: data=digits, data=mnist1d or data=synthetic."
        ) from None
    return tvd


class TorchvisionDataModule(TensorDataModule):
    """A torchvision dataset read from ``root`` (never downloaded unless ``download=true``)."""

    def __init__(self, name: str, root: str = "data", download: bool = False, **kw) -> None:
        super().__init__(**kw)
        if name not in _SETS:
            raise ValueError(f"unknown torchvision dataset {name!r}; valid: {', '.join(_SETS)}")
        self.name = name
        self.root = str(root)
        self.download = bool(download)

    def load_arrays(self) -> Arrays:
        cls_name, n_classes = _SETS[self.name]
        tvd = _import_torchvision_datasets()
        cls = getattr(tvd, cls_name)
        try:
            train = cls(self.root, train=True, download=self.download)
            test = cls(self.root, train=False, download=self.download)
        except Exception as err:
            raise DatasetUnavailable(
                f"{self.name} not found under {Path(self.root).resolve()} ({err}). Put the torchvision "
                f'copy there (e.g. on a machine with network: `python -c "import torchvision; '
                f"torchvision.datasets.{cls_name}('{self.root}', download=True)\"`), set data.root=..., "
                "or pass data.download=true where there is network."
            ) from None
        return Arrays(*_to_arrays(train), *_to_arrays(test), n_classes)


def _to_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(ds.data)
    if x.ndim == 3:  # MNIST-like: N, H, W
        x = x[:, None]
    else:  # CIFAR: N, H, W, C
        x = x.transpose(0, 3, 1, 2)
    return (x.astype(np.float32) / 255.0), np.asarray(ds.targets, dtype=np.int64)
