"""Saving figures atomically and consistently."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from lsx.utils.io import atomic_path


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
