"""Every main figure: axis labels on every axes (α/β on 3D views), constrained layout, integer epoch ticks."""

import numpy as np
import pytest
from matplotlib.ticker import MaxNLocator


@pytest.fixture
def rendered(monkeypatch):
    """Figures as they are saved (the check runs on the figure, before it is closed)."""
    from lsx.plots import common, surfaces, training

    seen = []
    real = common.save_figure

    def record(fig, path, **kw):
        seen.append((path.name, common.missing_labels(fig), fig.get_layout_engine(), fig))
        return real(fig, path, **kw)

    for mod in (surfaces, training):
        monkeypatch.setattr(mod, "save_figure", record)
    return seen


def test_main_figures_have_labels_and_constrained_layout(rendered, tmp_path):
    from lsx.plots.surfaces import (
        plot_curves,
        plot_interpolation,
        plot_pca_trajectory,
        plot_surface_views,
        plot_weight_histograms,
    )
    from lsx.plots.training import plot_learning_curve

    a = np.linspace(-1, 1, 7)
    m = {f"{s}_{k}": np.abs(a) + 0.1 for s in ("train", "test") for k in ("loss", "acc")}
    plot_interpolation(a, m, tmp_path / "interp.png")
    plot_curves(a, [a**2, a**2 + 1], ["d0: 1 stationary", "d1"], tmp_path / "curves.png")
    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    plot_surface_views(x, y, np.add.outer(y**2, x**2) + 0.1, tmp_path, "s", points={"θ*": (0.0, 0.0)})
    plot_pca_trajectory(
        x, y, np.add.outer(y**2, x**2) + 0.1, np.array([[0.5, 0.5], [0.0, 0.0]]), [1, 2], [0.6, 0.3], tmp_path / "pca.png"
    )
    plot_weight_histograms({"m": (np.array([1.0, 2.0]), np.array([0.0, 0.5, 1.0]))}, tmp_path / "w.png")
    plot_learning_curve(
        [{"epoch": e, "train/loss": 1.0 / (e + 1), "train/acc": 0.5, "val/loss": 1.0, "val/acc": 0.4} for e in range(3)],
        tmp_path / "lc.png",
    )
    names = {n for n, *_ in rendered}
    assert {
        "interp.png",
        "curves.png",
        "s_contour.png",
        "s_contourf.png",
        "s_heatmap.png",
        "s_3d.png",
        "pca.png",
        "w.png",
        "lc.png",
    } <= names
    for name, missing, engine, _ in rendered:
        assert missing == [], (name, missing)
        assert engine is not None and type(engine).__name__ == "ConstrainedLayoutEngine", name
    fig3d = next(f for n, *_, f in rendered if n == "s_3d.png")
    ax = fig3d.axes[0]
    assert ax.get_xlabel().startswith("α") and ax.get_ylabel().startswith("β") and ax.get_zlabel()
    lc = next(f for n, *_, f in rendered if n == "lc.png")
    assert all(isinstance(a.xaxis.get_major_locator(), MaxNLocator) and a.xaxis.get_major_locator()._integer for a in lc.axes)
    assert all(p.exists() for p in tmp_path.glob("*.png")) and len(list(tmp_path.glob("*.png"))) == len(rendered)


def test_missing_labels_sees_an_unlabelled_axis():
    import matplotlib.pyplot as plt

    from lsx.plots.common import missing_labels, new_figure

    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x")
    assert missing_labels(fig) == ["axes 0: no y label"]
    plt.close(fig)
