"""A generated language task with a learnable rule, so a tiny transformer reaches a real minimum on CPU in a minute.

Each sequence is an arithmetic progression modulo ``vocab_size``: a random start token and a random step from
``steps``; ``x`` is the sequence without its last token, ``y`` the same shifted by one (next-token targets). The
first target (the second token) depends on the unseen step and cannot be predicted, every later one follows from
the two tokens before it, so the loss floor is about ln(len(steps)) / (seq_len - 1) per token, and a model that
learned the rule gets next-token accuracy near (seq_len - 2) / (seq_len - 1) and above.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class RuleSequences(Dataset):
    """``num`` progressions (x, y) of length ``seq_len`` - 1, generated from ``seed``."""

    def __init__(
        self, num: int, seq_len: int = 12, vocab_size: int = 16, steps: tuple[int, ...] = (1, 2, 3), seed: int = 0
    ) -> None:
        if seq_len < 3 or vocab_size < 2 or num < 1 or not steps:
            raise ValueError(
                f"RuleSequences needs num >= 1, seq_len >= 3, vocab_size >= 2 and steps, got "
                f"num={num}, seq_len={seq_len}, vocab_size={vocab_size}, steps={steps}"
            )
        rng = np.random.default_rng(seed)
        start = rng.integers(0, vocab_size, num)
        step = np.asarray(steps)[rng.integers(0, len(steps), num)]
        seq = (start[:, None] + step[:, None] * np.arange(seq_len)[None, :]) % vocab_size
        self.x = torch.from_numpy(seq[:, :-1].astype(np.int64))
        self.y = torch.from_numpy(seq[:, 1:].astype(np.int64))
        self.num_classes = int(vocab_size)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def rule_sequences(
    num_train: int = 2000,
    num_test: int = 500,
    seq_len: int = 12,
    vocab_size: int = 16,
    steps: tuple[int, ...] = (1, 2, 3),
    generator_seed: int = 0,
) -> dict[str, RuleSequences]:
    """Train and test sets of :class:`RuleSequences` from disjoint generator streams."""
    make = lambda n, s: RuleSequences(n, seq_len, vocab_size, tuple(steps), s)  # noqa: E731
    return {"train": make(num_train, generator_seed * 2), "test": make(num_test, generator_seed * 2 + 1)}
