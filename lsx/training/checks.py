"""Checks of training settings shared by the command line's validation and the training code.

Why a module of its own: the command line validates a config before anything is created and must not
import Lightning to do it (a cache hit stays fast); the training callbacks check the same values because
a script may build them without the command line.
"""

from __future__ import annotations

import numbers
from typing import Any


def check_resume_schedule(every: Any, min_interval_s: Any) -> None:
    """``training.resume_every`` is an integer >= 0 or null, ``training.resume_min_interval_s`` a number >= 0
    (the training callbacks check it too)."""
    if every is not None and not ((isinstance(every, numbers.Integral) and not isinstance(every, bool)) and every >= 0):
        raise ValueError(
            f"training.resume_every must be an integer >= 0 or null (epochs between resume points; "
            f"0 or null = never write resume.ckpt), got {every!r}"
        )
    if not (isinstance(min_interval_s, numbers.Real) and not isinstance(min_interval_s, bool) and min_interval_s >= 0):
        raise ValueError(
            f"training.resume_min_interval_s must be a number of seconds >= 0 (0 = a resume point at "
            f"every resume_every epoch), got {min_interval_s!r}"
        )
