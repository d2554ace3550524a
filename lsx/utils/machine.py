"""The CPU a number was computed on: CPU results (and timings) differ across CPU models."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """``model name`` from /proc/cpuinfo (e.g. "AMD EPYC"), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
