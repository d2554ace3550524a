"""Progress of long loops: a tqdm bar on a terminal, periodic log lines elsewhere, or a callback.

Why both: a bar is what a person at a terminal wants, but in a log file (SLURM, nohup, a sweep) a bar is
either nothing or a flood of carriage returns, and an hour-long surface that prints nothing until it
ends looks hung. ``progress="log"`` prints one line every ``LOG_EVERY_S`` seconds (points done, rate,
ETA) and one when the loop ends.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Iterator, TypeVar, Union

log = logging.getLogger("lsx.progress")

Progress = Union[bool, str, Callable[[int, int], None], None]
LOG_EVERY_S = 30.0
T = TypeVar("T")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class LogTicker:
    """tick(done) logs ``desc: done/total (p%), rate, ETA`` at most every ``every_s`` seconds; tick(None) ends."""

    def __init__(
        self, desc: str, total: int, unit: str = "pt", every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.desc, self.total, self.unit, self.every_s, self.clock = desc, int(total), unit, float(every_s), clock
        self.t0 = self.last = clock()
        self.done = 0

    def __call__(self, done: int | None) -> None:
        now = self.clock()
        if done is None:
            if self.done:
                log.info("%s: %d/%d done in %s", self.desc, self.done, self.total, _duration(now - self.t0))
            return
        self.done = int(done)
        if now - self.last < self.every_s or self.done >= self.total:
            return
        self.last = now
        rate = self.done / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info(
            "%s: %d/%d (%d%%), %.3g %s/s, ETA %s",
            self.desc,
            self.done,
            self.total,
            100 * self.done // max(self.total, 1),
            rate,
            self.unit,
            _duration(eta) if eta != float("inf") else "?",
        )


def ticker(progress: Progress, total: int, desc: str, rank: int = 0, unit: str = "pt") -> Callable[[int | None], None]:
    """A tick(done) function: a callback ``progress(done, total)``, a tqdm bar (``True``, rank 0), periodic
    log lines (``"log"``, rank 0), or nothing; tick(None) closes."""
    if callable(progress):
        return lambda done: None if done is None else progress(done, total)
    if rank != 0 or not progress:
        return lambda done: None
    if progress == "log":
        return LogTicker(desc, total, unit)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, leave=False)

    def tick(done: int | None) -> None:
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)

    return tick


def progress_iter(items: Iterable[T], total: int, desc: str, progress: Progress, unit: str = "it") -> Iterator[T]:
    """Iterate ``items`` while reporting progress as :func:`ticker` says."""
    tick = ticker(progress, total, desc, unit=unit)
    try:
        for i, item in enumerate(items, 1):
            yield item
            tick(i)
    finally:
        tick(None)
