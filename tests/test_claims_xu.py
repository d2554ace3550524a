"""Xu statistics on hand-made job records with known answers."""
from pathlib import Path

import pytest

pytest.importorskip("lsx.claims.statistics", reason="the claims framework (lsx/claims) is not merged yet")

from lsx.claims.records import JobRecord  # noqa: E402
from lsx.claims.statistics import InsufficientData, get_statistic  # noqa: E402
from lsx.claims.stats_xu import wilson_interval  # noqa: E402


def job(seed, job_name="curve_taxonomy", **metrics):
    return JobRecord(config={"analysis": {"job": job_name}, "seed": seed}, metrics=metrics, seed=seed,
                     job_dir=Path(f"/tmp/{job_name}_{seed}"), training=[{"seed": seed, "train_loss": 0.1}])


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(4, 4)
    assert lo == pytest.approx(0.5101, abs=1e-4) and hi == 1.0
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_curve_kind_fraction_per_seed_and_per_curve():
    stat = get_statistic("xu_curve_kind")
    jobs = [job(s, types_gaussian=["v-basin", "v-basin", "v-side"]) for s in range(4)]
    jobs.append(job(0, "mining", w_peak_type_after="w-peak"))  # another analysis of the preset: ignored
    est = stat(jobs, y="metrics.types_gaussian", expect="v-basin")
    assert (est.value, est.n, est.lo) == (1.0, 4, pytest.approx(0.5101, abs=1e-4))  # lo > 0.5: reproduced
    est = stat(jobs, y="metrics.types_gaussian", expect="v-basin", unit="curve")
    assert est.n == 12 and est.value == pytest.approx(8 / 12)
    est = stat(jobs, y="metrics.types_gaussian", expect="w-peak")
    assert est.value == 0.0 and est.hi < 0.5  # not reproduced against {greater: 0.5}
    one_of_three = [job(s, types_gaussian=["v-basin", "v-side", "w-peak"]) for s in range(3)]
    assert stat(one_of_three, y="metrics.types_gaussian", expect="v-basin").value == 0.0
    est = stat([job(s, "mining", w_peak_type_after="w-peak") for s in range(3)], y="metrics.w_peak_type_after",
               expect="w-peak", job="mining")
    assert est.value == 1.0 and est.n == 3 and est.table[0]["train_loss"] == 0.1


def test_curve_kind_needs_two_seeds_and_a_known_unit():
    stat = get_statistic("xu_curve_kind")
    with pytest.raises(InsufficientData, match="at least 2"):
        stat([job(0, types_pe=["v-basin"])], y="metrics.types_pe", expect="v-basin")
    with pytest.raises(InsufficientData, match="no finished"):
        stat([job(0, "mining")], y="metrics.types_pe", expect="v-basin")
    with pytest.raises(ValueError, match="unit"):
        stat([job(0, types_pe=["v-basin"])], y="metrics.types_pe", expect="v-basin", unit="direction")


def test_gmi_ratio_geometric_mean_and_failures():
    stat = get_statistic("xu_gmi_ratio")

    def theory(seed, r):
        return job(seed, "xu_theory", gmi_ratios=[r, 2 * r], sigmas=[1e-3, 1e-2], delta_means=[r, 1.0], delta_predicted=[1.0, 1.0])

    est = stat([theory(0, 1.0), theory(1, 1.21)])
    assert est.value == pytest.approx(1.1) and est.lo < 1.1 < est.hi and est.n == 2
    assert stat([theory(0, 1.0), theory(1, 1.21)], sigma_index=1).value == pytest.approx(2.2)
    with pytest.raises(InsufficientData, match="not positive"):
        stat([theory(0, 1.0), theory(1, -0.5)])
    with pytest.raises(ValueError, match="sigma_index"):
        stat([theory(0, 1.0), theory(1, 1.0)], sigma_index=5)


def test_report_plots_draw_from_the_records(tmp_path):
    import numpy as np

    from lsx.claims.figures import get_figure
    from lsx.claims.statistics import get_statistic_plot

    jobs = []
    for s in range(2):
        j = job(s, types_gaussian=["v-basin", "v-side"])
        j.job_dir = tmp_path / f"ct{s}"
        j.job_dir.mkdir()
        lam = np.linspace(-1, 1, 5)
        np.savez(j.job_dir / "curve_taxonomy.npz", loss=np.stack([lam**2, lam + 1]), kinds=np.array(["gaussian"] * 2),
                 types=np.array(["v-basin", "v-side"]), lams=np.stack([lam, lam]))
        jobs.append(j)
    est = get_statistic("xu_curve_kind")(jobs, y="metrics.types_gaussian", expect="v-basin", unit="curve")
    out = get_statistic_plot("xu_curve_kind")(jobs, est, tmp_path / "kind.png", expect="v-basin")
    assert out.stat().st_size > 0
    assert get_figure("xu_taxonomy_curves")(jobs, tmp_path / "curves.png").stat().st_size > 0
    with pytest.raises(InsufficientData):
        get_figure("xu_taxonomy_curves")([job(0)], tmp_path / "none.png")
