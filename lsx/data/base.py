"""In-memory LightningDataModules with deterministic splits and a fixed landscape subset.

Why in memory: every dataset the suite uses fits in RAM as tensors (CIFAR-10 is 600 MB as
float32), and tensors make the landscape evaluator's repeated passes cheap. Splits and the
landscape subset come from their own seeds, independent of the training seed, so every
optimum of a sweep and every analysis job sees exactly the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lsx.models import DataShape


@dataclass(frozen=True)
class LandscapeSubset:
    """The fixed train and test examples every analysis job evaluates on."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_x, self.train_y

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.test_x, self.test_y


@dataclass
class Arrays:
    """Raw arrays of a dataset: images as float (N, C, H, W) and integer labels.

    Other inputs keep their kind: integer inputs (token ids) stay int64 and are never normalized, other
    shapes ((N, L) sequences, (N, F) features) are allowed, and real-valued targets (regression) stay float32.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


def _as_inputs(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32)


def _as_targets(a) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.int64) if np.issubdtype(a.dtype, np.integer) or a.dtype == bool else a.astype(np.float32)


def _seeded_perm(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


class TensorDataModule(L.LightningDataModule):
    """Base class: subclasses implement :meth:`load_arrays`; everything else is shared."""

    name = "base"

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        train_limit: int | None = None,
        normalize: bool = True,
        augment: bool = False,
        num_workers: int = 0,
        landscape_train: int = 1000,
        landscape_test: int = 500,
        landscape_seed: int = 0,
        **unused,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        self.train_limit = train_limit
        self.normalize = normalize
        self.augment = augment
        self.num_workers = int(num_workers)
        self.landscape_sizes = (int(landscape_train), int(landscape_test))
        self.landscape_seed = int(landscape_seed)
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self._num_classes: int | None = None
        self._loader_seed = 0

    # ---------------------------------------------------------------- subclasses
    def load_arrays(self) -> Arrays:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- preparation
    def prepare(self) -> "TensorDataModule":
        """Load, split and normalize once; later calls are free."""
        if self._tensors is not None:
            return self
        arr = self.load_arrays()
        x, y = _as_inputs(arr.train_x), _as_targets(arr.train_y)
        perm = _seeded_perm(len(x), self.split_seed)
        n_val = int(round(self.val_fraction * len(x)))
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        if self.train_limit:
            train_idx = train_idx[: int(self.train_limit)]
        tx, ty = x[train_idx], y[train_idx]
        vx, vy = x[val_idx], y[val_idx]
        sx, sy = _as_inputs(arr.test_x), _as_targets(arr.test_y)
        if self.normalize and x.dtype == np.float32:
            axes = (0,) + tuple(range(2, x.ndim))  # per channel (images: over N, H, W)
            mean = tx.mean(axis=axes, keepdims=True)
            std = tx.std(axis=axes, keepdims=True) + 1e-6
            tx, vx, sx = (tx - mean) / std, (vx - mean) / std, (sx - mean) / std
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        self._tensors = {"train": (t(tx), t(ty)), "val": (t(vx), t(vy)), "test": (t(sx), t(sy))}
        self._num_classes = int(arr.num_classes)
        return self

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) tensors of ``train``, ``val`` or ``test``."""
        self.prepare()
        if name not in self._tensors:
            raise ValueError(f"unknown split {name!r}; valid: train, val, test")
        return self._tensors[name]

    @property
    def shape(self) -> DataShape:
        """(channels, height, width, classes); an (N, L) sequence is 1 x 1 x L, (N, C, L) is C x 1 x L."""
        x, _ = self.split("train")
        dims = tuple(int(d) for d in x.shape[1:])
        if len(dims) > 3:
            raise ValueError(f"data {self.name!r}: inputs of shape {tuple(x.shape)} have more than 3 dimensions per example")
        c, h, w = (1, 1, 1, *dims)[len(dims) :] if len(dims) < 2 else ((dims[0], 1, dims[1]) if len(dims) == 2 else dims)
        return DataShape(c, h, w, int(self._num_classes))

    def landscape_subset(self) -> LandscapeSubset:
        """A fixed, seeded subset of train and test examples (the same for every job)."""
        (tx, ty), (sx, sy) = self.split("train"), self.split("test")
        n_tr, n_te = min(self.landscape_sizes[0], len(tx)), min(self.landscape_sizes[1], len(sx))
        g = torch.Generator().manual_seed(self.landscape_seed)
        i_tr = torch.randperm(len(tx), generator=g)[:n_tr].sort().values
        i_te = torch.randperm(len(sx), generator=g)[:n_te].sort().values
        return LandscapeSubset(tx[i_tr], ty[i_tr], sx[i_te], sy[i_te])

    # ---------------------------------------------------------------- loaders
    def set_loader_seed(self, seed: int) -> None:
        """Seed of the training shuffle (the training seed), so a seed fixes the batch order."""
        self._loader_seed = int(seed)

    def _loader(self, name: str, shuffle: bool, batch_size: int) -> DataLoader:
        x, y = self.split(name)
        if len(x) == 0:
            return DataLoader(TensorDataset(x, y), batch_size=batch_size)
        sampler = EpochShuffleSampler(len(x), self._loader_seed) if shuffle else None
        if self.augment and name == "train":
            ds = AugmentedTensorDataset(x, y, True, self._loader_seed)
            return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers)
        # no augmentation: a batch is one slice x[indices] (same sampler, same batches, no per-example
        # indexing and re-stacking — ~8% of a small model's training step)
        return DataLoader(
            SlicedTensorDataset(x, y),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_already_batched,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """Shuffles with a permutation derived from (seed, epoch).

    Why: Lightning calls ``set_epoch`` on the sampler each epoch, so a run resumed at epoch k
    sees exactly the batches an uninterrupted run would (a shared generator would restart).
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class SlicedTensorDataset(TensorDataset):
    """A tensor dataset that serves a whole batch of indices as one slice (``DataLoader`` calls
    ``__getitems__`` with the sampler's batch); pair it with ``collate_fn=_already_batched``."""

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[idx] for t in self.tensors)


def _already_batched(batch):
    return list(batch)


class AugmentedTensorDataset(TensorDataset):
    """Tensor dataset with optional CIFAR-style augmentation (random 4-px crop + horizontal flip).

    Written with tensor ops so the default environment needs no torchvision. The random
    stream is derived from (seed, index, epoch-independent counter) to stay reproducible.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, augment: bool, seed: int) -> None:
        super().__init__(x, y)
        self.augment = augment
        self._gen = torch.Generator().manual_seed(seed + 7919)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random stream's position, for ``resume.ckpt``: a resumed run draws the crops and flips an
        uninterrupted one would (the stream is shared across epochs, so a fresh one would restart it)."""
        return {"generator": self._gen.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._gen.set_state(state["generator"])

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        if not self.augment:
            return x, y
        pad = torch.nn.functional.pad(x, (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (2,), generator=self._gen).tolist()
        x = pad[:, dy : dy + x.shape[1], dx : dx + x.shape[2]]
        if torch.rand((), generator=self._gen) < 0.5:
            x = x.flip(-1)
        return x, y
