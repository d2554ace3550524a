"""The code version recorded in every output: git commit (with a dirty flag) or package version."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import lsx


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    root = Path(lsx.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5
            )
            return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"lsx-{lsx.__version__}"
