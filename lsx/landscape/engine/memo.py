"""Resumable loops without file I/O in the numerical core.

A long loop (tunnel directions, connector nodes, m-connector hull points) hands each item to
``memo(key, compute)``. The default computes; a job passes a memo that stores each finished item
in its directory (:meth:`lsx.jobs.base.JobContext.stage`), so a killed job resumes after the last
finished item and a finished one is never recomputed.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")
Memo = Callable[[str, Callable[[], T]], T]


def compute_now(key: str, compute: Callable[[], T]) -> T:
    """The memo that remembers nothing."""
    return compute()
