"""Timing that cannot flatter: contenders interleaved in one process, order rotated, medians with min–max.

Why: the machine is shared, so load drifts during a run. Timing one contender after the other lets that
drift enter the ratio; here every round runs every contender once (a rotated order each round, so none is
always first or last), and ratios are taken *within* a round before the median is formed. The load
average is printed before and after so a reader can judge how busy the machine was.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from lsx.utils.machine import cpu_model


@dataclass
class Timings:
    """Seconds per round for each contender (rounds interleaved), plus the last return value of each."""

    seconds: dict[str, list[float]]
    results: dict[str, Any] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def span(self, name: str) -> tuple[float, float]:
        return min(self.seconds[name]), max(self.seconds[name])

    def ratios(self, name: str, reference: str) -> list[float]:
        """Per-round time ratios name/reference (same round, so the same load)."""
        return [a / b for a, b in zip(self.seconds[name], self.seconds[reference])]

    def ratio(self, name: str, reference: str) -> tuple[float, float, float]:
        """(median, min, max) of the per-round ratios name/reference."""
        r = self.ratios(name, reference)
        return statistics.median(r), min(r), max(r)


def interleave(contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> Timings:
    """Run every contender once per round for ``warmup`` untimed + ``repeats`` timed rounds, order rotated."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names = list(contenders)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    results: dict[str, Any] = {}
    for r in range(warmup + repeats):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t = time.perf_counter()
            results[n] = contenders[n]()
            dt = time.perf_counter() - t
            if r >= warmup:
                seconds[n].append(dt)
    return Timings(seconds, results)


def fmt_time(t: Timings, name: str) -> str:
    lo, hi = t.span(name)
    return f"{t.median(name):.3f} ({lo:.3f}–{hi:.3f})"


def fmt_ratio(t: Timings, name: str, reference: str) -> str:
    med, lo, hi = t.ratio(name, reference)
    return f"{med:.2f}x ({lo:.2f}–{hi:.2f})"


def load_average() -> str:
    try:
        a = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{a[0]:.2f} {a[1]:.2f} {a[2]:.2f}"


def header(title: str, repeats: int | str, warmup: int) -> str:
    return (
        f"{title}: torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs ({cpu_model()}); "
        f"{repeats} interleaved rounds (+{warmup} warm-up), order rotated; median (min–max); "
        f"ratios are medians of per-round ratios. Load average before: {load_average()}"
    )


def block(name: str, lines: list[str]) -> str:
    """Markdown lines between the markers that ``update_readme.py`` replaces in the README."""
    return "\n".join([f"<!-- bench:{name} -->", *lines, f"<!-- /bench:{name} -->"])


def print_block(name: str, title: str, lines: list[str]) -> None:
    """Print a benchmark's block: ``title`` with the load average after the run, a blank line, then ``lines``."""
    print(block(name, [f"{title}; after: {load_average()}", "", *lines]))


def table(columns: list[str], rows: list[str]) -> list[str]:
    """A markdown table's lines: the header of ``columns``, its separator, then ``rows``."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows]


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(int(threads))
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process
            pass


def run_python(args: list[str], env: dict[str, str]) -> None:
    """``python ARGS`` in a fresh interpreter (what a user's command costs, imports included); a failure
    raises with the end of its stderr."""
    res = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {res.stderr[-2000:]}")
