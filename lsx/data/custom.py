"""Any map-style ``Dataset`` (or a LightningDataModule) as lsx data: ``data: {_target_: my_pkg.make_data, ...}``.

Why through :class:`~lsx.data.base.TensorDataModule`: the examples are read once into tensors, so lsx's guarantees
hold for a user's data as for its own: the validation split comes from ``split_seed``, the landscape subset from
``landscape_seed`` (neither depends on the training seed), and every optimum of a sweep sees the same splits. The
target must be deterministic (build the same examples on every call).

What the target may return: a ``Dataset`` of ``(x, y)`` items (a test split of ``test_fraction`` is then drawn with
``split_seed``), a dict ``{"train": Dataset, "test": Dataset}``, or a LightningDataModule (its train and test
loaders' datasets). Keys of the data config that lsx uses (batch sizes, splits, landscape subset, ``test_fraction``,
``num_classes``, ``name``) are not passed to the target; every other key is.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np
import torch

from .base import Arrays, TensorDataModule

_LSX_KEYS = set(inspect.signature(TensorDataModule.__init__).parameters) - {"self", "unused"} | {
    "test_fraction",
    "num_classes",
    "name",
    "_target_",
}


def _stack(ds: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays of every item of a map-style dataset."""
    if isinstance(ds, torch.utils.data.IterableDataset) or not hasattr(ds, "__len__") or not hasattr(ds, "__getitem__"):
        raise ValueError(
            f"data._target_ {what}: {type(ds).__name__} is not a map-style Dataset (needs __len__ and "
            "__getitem__ returning (x, y)); lsx reads every example once into tensors"
        )
    if len(ds) == 0:
        raise ValueError(f"data._target_ {what}: the dataset is empty")
    items = [ds[i] for i in range(len(ds))]
    if not all(isinstance(it, (tuple, list)) and len(it) == 2 for it in items[:1]):
        raise ValueError(f"data._target_ {what}: items must be (x, y) pairs, got {type(items[0]).__name__}")
    xs = torch.stack([torch.as_tensor(x) for x, _ in items])
    ys = torch.stack([torch.as_tensor(y) for _, y in items])
    return xs.numpy(), ys.numpy()


def _datasets(obj: Any) -> tuple[Any, Any | None]:
    """(train, test or None) from whatever the target returned."""
    import lightning as L

    if isinstance(obj, L.LightningDataModule):
        obj.prepare_data()
        obj.setup("fit")
        train = obj.train_dataloader().dataset
        try:
            obj.setup("test")
            test = obj.test_dataloader().dataset
        except Exception:  # no test loader: lsx draws a test split
            test = None
        return train, test
    if isinstance(obj, Mapping):
        if "train" not in obj:
            raise ValueError(
                f"data._target_ returned a dict without 'train' (keys: {', '.join(map(str, obj))}); "
                "valid: {'train': Dataset, 'test': Dataset}"
            )
        return obj["train"], obj.get("test")
    return obj, None


class DatasetDataModule(TensorDataModule):
    """A user's dataset behind lsx's splits and landscape subset."""

    def __init__(self, target: Mapping[str, Any], test_fraction: float = 0.2, num_classes: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        from lsx.models.target import target_label

        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
        self.target = {k: v for k, v in target.items() if k == "_target_" or k not in _LSX_KEYS}
        self.test_fraction = float(test_fraction)
        self.num_classes = num_classes
        self.name = target_label(target)

    def load_arrays(self) -> Arrays:
        from lsx.models.target import instantiate

        obj = instantiate(self.target, "data")
        train, test = _datasets(obj)
        tx, ty = _stack(train, "train split")
        if test is not None:
            sx, sy = _stack(test, "test split")
        else:  # a seeded test split of its own (offset from the validation split's seed)
            perm = np.random.default_rng(self.split_seed + 1_000_003).permutation(len(tx))
            n_test = max(1, int(round(self.test_fraction * len(tx))))
            sx, sy, tx, ty = tx[perm[:n_test]], ty[perm[:n_test]], tx[perm[n_test:]], ty[perm[n_test:]]
        return Arrays(tx, ty, sx, sy, self._classes(obj, train, ty))

    def _classes(self, obj: Any, train: Any, ty: np.ndarray) -> int:
        """``num_classes`` from the config, the target's attribute, integer labels (max + 1), or 1 for real targets."""
        if self.num_classes is not None:
            return int(self.num_classes)
        for source in (train, obj):
            if isinstance(getattr(source, "num_classes", None), int):
                return int(source.num_classes)
        return int(ty.max()) + 1 if np.issubdtype(ty.dtype, np.integer) else 1
