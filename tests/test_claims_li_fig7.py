"""li_fig7 (Li et al. Fig. 7, width): the preset composes at cpu scale, its claims name real statistics,
and those statistics give the right verdict on hand-made surfaces (no training)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsx.claims.statistics")
from lsx.claims.records import JobRecord  # noqa: E402
from lsx.claims.statistics import InsufficientData, get_statistic  # noqa: E402
from lsx.claims.stats_surface import mean_rise  # noqa: E402
from lsx.claims.verdicts import NOT_REPRODUCED, REPRODUCED, evaluate_claim  # noqa: E402

WIDTHS = (0.25, 0.5, 1.0)
AXIS = np.linspace(-1.0, 1.0, 11)


def test_preset_composes_at_cpu_scale_and_its_claims_parse():
    from lsx.cli.reproduce import make_plan

    plan = make_plan("li_fig7")
    assert plan.scale == "cpu" and plan.seeds == {"discovery": list(range(6)), "replication": list(range(6, 12))}
    assert len(plan.points) == 36 and all("training.target_train_loss=0.002" in p for p in plan.points)
    assert {p[-1] for p in plan.points} == {f"model.width={w}" for w in WIDTHS}
    ids = {c["id"]: c for c in plan.claims}
    assert set(ids) == {"wider_flatter", "wider_more_convex", "wider_generalizes_better", "flatness_tracks_test_error"}
    assert ids["wider_flatter"]["statistic"] == "surface_rise_spearman"
    assert [f["figure"] for f in plan.figures] == ["li_width_surfaces"]

    from lsx.cli.reproduce import compose_point

    c = compose_point(plan.points[-1])
    assert (c["model"]["name"], c["model"]["width"], c["data"]["name"]) == ("resnet20", 1.0, "digits")
    assert c["analysis"]["job"] == "surface2d" and c["analysis"]["convexity"]["enabled"] is True
    assert c["analysis"]["x"]["num"] == 11 and c["training"]["target_train_loss"] == 0.002


def test_mean_rise_counts_points_within_the_radius():
    X, Y = np.meshgrid(AXIS, AXIS)
    z = 0.1 + X**2 + Y**2  # rise = r²
    inner = np.hypot(X, Y)[(np.hypot(X, Y) <= 0.5 + 1e-9) & (np.hypot(X, Y) > 0)]
    assert inner.size == 20
    assert mean_rise(AXIS, AXIS, z, 0.5) == pytest.approx(float(np.mean(inner**2)))
    assert mean_rise(AXIS, AXIS, z) == pytest.approx(float((X**2 + Y**2).sum() / 120))
    with pytest.raises(InsufficientData, match="radius"):
        mean_rise(AXIS, AXIS, z, 0.1)


def _surface_job(tmp_path: Path, seed: int, width: float, curvature: float, chaos: float, acc: float) -> JobRecord:
    d = tmp_path / f"w{width}_s{seed}"
    d.mkdir()
    X, Y = np.meshgrid(AXIS, AXIS)
    loss = 0.03 + curvature * (X**2 + Y**2)
    np.savez(
        d / "surface_grid.npz",
        x=AXIS,
        y=AXIS,
        train_loss=loss,
        train_acc=np.ones_like(loss),
        test_loss=loss,
        test_acc=np.ones_like(loss),
    )
    return JobRecord(
        config={"model": {"name": "resnet20", "width": width}},
        seed=seed,
        job_dir=d,
        metrics={"convexity_mean_negative_ratio": chaos, "center_train_loss": 0.03},
        training=[{"seed": seed, "train_loss": 0.045, "test_acc": acc, "run_dir": f"run_{width}_{seed}", "stopped_by": "target"}],
    )


def _jobs(tmp_path: Path, wider_better: bool) -> list[JobRecord]:
    jobs = []
    for s in range(6):  # a verdict needs ≥ 6 seeds
        for k, w in enumerate(WIDTHS):
            k = k if wider_better else 2 - k
            jobs.append(
                _surface_job(
                    tmp_path,
                    s,
                    w,
                    curvature=4.0 / (1 + k) + 0.1 * s,
                    chaos=0.3 / (1 + k) + 0.01 * s,
                    acc=0.90 + 0.02 * k + 0.001 * s,
                )
            )
    return jobs


@pytest.mark.parametrize("wider_better, expected", [(True, REPRODUCED), (False, NOT_REPRODUCED)])
def test_claims_give_the_right_verdict_on_synthetic_widths(tmp_path, wider_better, expected):
    from lsx.cli.reproduce import make_plan

    jobs = _jobs(tmp_path, wider_better)
    for claim in make_plan("li_fig7").claims:
        if claim["statistic"] == "li_flatness_tracks_error":
            continue  # a sign interval over 6+ seeds: tests/test_claims_li_paths.py
        res = evaluate_claim(claim, jobs)
        assert res.verdict == expected, (claim["id"], res.reason)
        assert res.estimate.n == 6 and not res.train_loss_flag
        assert abs(res.estimate.value) == pytest.approx(1.0)
    est = get_statistic("surface_rise_spearman")(jobs, x="model.width", radius=0.5)
    assert [r["model.width"] for r in est.table] == list(WIDTHS)


def test_width_surfaces_figure_draws_one_panel_per_width(tmp_path):
    from lsx.claims.figures import get_figure

    out = get_figure("li_width_surfaces")(_jobs(tmp_path, True), tmp_path / "fig7.png", key="model.width")
    assert out.exists() and out.stat().st_size > 1000
