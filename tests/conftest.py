"""Shared fixtures: every test runs with W&B offline and its own cache/output directories."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lsx_dirs(tmp_path, monkeypatch):
    """Isolated cache and output roots for a test (also exported for subprocesses)."""
    cache, out = tmp_path / "cache", tmp_path / "outputs"
    monkeypatch.setenv("LSX_CACHE_DIR", str(cache))
    monkeypatch.setenv("LSX_OUTPUT_DIR", str(out))
    return cache, out


@pytest.fixture
def compose(lsx_dirs):
    """Compose a config like the command line, with isolated paths."""
    from omegaconf import OmegaConf

    from lsx.config import compose_config

    def _compose(*overrides: str) -> dict:
        cfg = compose_config(list(overrides))
        c = OmegaConf.to_container(cfg, resolve=False)
        c.pop("hydra", None)
        c = OmegaConf.to_container(OmegaConf.create(c), resolve=True)
        return c

    return _compose


def run_module(module: str, *args: str, env: dict | None = None, cwd: Path = ROOT, timeout: int = 600):
    """Run ``python -m module args`` as a user would; returns the CompletedProcess."""
    import subprocess

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)
