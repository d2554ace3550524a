"""Datasets that need no download: sklearn digits, MNIST-1D (generated) and synthetic images."""

from __future__ import annotations

import numpy as np

from .base import Arrays, TensorDataModule


class DigitsDataModule(TensorDataModule):
    """The 1797 real 8x8 handwritten digits shipped inside scikit-learn (the default dataset)."""

    name = "digits"

    def __init__(self, test_fraction: float = 0.2, **kw) -> None:
        super().__init__(**kw)
        self.test_fraction = float(test_fraction)

    def load_arrays(self) -> Arrays:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images.astype(np.float32) / 16.0)[:, None]
        y = d.target.astype(np.int64)
        perm = np.random.default_rng(12345).permutation(len(x))  # fixed test split, never the training seed
        n_test = int(round(self.test_fraction * len(x)))
        te, tr = perm[:n_test], perm[n_test:]
        return Arrays(x[tr], y[tr], x[te], y[te], 10)


class MNIST1DDataModule(TensorDataModule):
    """MNIST-1D (Greydanus 2020), generated locally by the mnist1d package: 1 x 40 signals."""

    name = "mnist1d"

    def __init__(self, num_samples: int = 5000, generator_seed: int = 42, **kw) -> None:
        super().__init__(**kw)
        self.num_samples = int(num_samples)
        self.generator_seed = int(generator_seed)

    def load_arrays(self) -> Arrays:
        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as err:  # pragma: no cover - dependency is declared
            raise RuntimeError("data=mnist1d needs the mnist1d package: pip install mnist1d") from err
        args = get_dataset_args()
        args.num_samples = self.num_samples
        args.seed = self.generator_seed
        d = make_dataset(args)
        tx = np.asarray(d["x"], dtype=np.float32)[:, None, None, :]
        sx = np.asarray(d["x_test"], dtype=np.float32)[:, None, None, :]
        return Arrays(tx, np.asarray(d["y"]), sx, np.asarray(d["y_test"]), 10)


class SyntheticDataModule(TensorDataModule):
    """Class-conditional Gaussian images: learnable, any shape, instant. For tests and benchmarks."""

    name = "synthetic"

    def __init__(
        self,
        num_train: int = 512,
        num_test: int = 256,
        channels: int = 3,
        image_size: int = 32,
        num_classes: int = 10,
        noise: float = 1.0,
        generator_seed: int = 0,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.sizes = (int(num_train), int(num_test))
        self.dims = (int(channels), int(image_size), int(image_size))
        self.num_classes = int(num_classes)
        self.noise = float(noise)
        self.generator_seed = int(generator_seed)

    def load_arrays(self) -> Arrays:
        rng = np.random.default_rng(self.generator_seed)
        prototypes = rng.normal(size=(self.num_classes, *self.dims)).astype(np.float32)

        def draw(n: int):
            y = rng.integers(0, self.num_classes, size=n)
            x = prototypes[y] + self.noise * rng.normal(size=(n, *self.dims)).astype(np.float32)
            return x.astype(np.float32), y

        tx, ty = draw(self.sizes[0])
        sx, sy = draw(self.sizes[1])
        return Arrays(tx, ty, sx, sy, self.num_classes)
