"""Fort statistics over independent units (lsx.claims.stats_fort_paths) and the connector measures they read,
on hand-made matrices, curves and job records (no training)."""

from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import toeplitz

from lsx.claims import stats_fort_paths as sp
from lsx.claims.inference import null_rates, unit_interval
from lsx.claims.records import JobRecord
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, decide_interval, evaluate_claim
from lsx.landscape.paths.connectors import half_masks, label_change_by_half, two_block_at_equal_lag

TWO_BLOCK = {"greater": 0.5}  # the fort_fig3 / fort_toy decision


def Job(unit, metrics, key="analysis.seeds"):  # noqa: N802  (reads like the record it builds)
    section, name = key.split(".")
    return JobRecord(config={section: {name: unit}}, metrics=metrics, seed=0, job_dir=Path(f"job{unit}"))


def banded(k, decay=0.25, noise=0.0, rng=None):
    """Cosines that depend on the node distance only (plus symmetric noise): no two blocks."""
    c = toeplitz(np.exp(-decay * np.arange(k)))
    if noise:
        e = rng.normal(0, noise, (k, k))
        c = np.clip(c + (e + e.T) / 2, -1, 1)
        np.fill_diagonal(c, 1.0)
    return c


def two_blocks(k, within=0.8, across=0.0, decay=0.0, noise=0.0, rng=None):
    """Fig. 3 middle: aligned inside each half, orthogonal across (optionally decaying inside)."""
    first, second = half_masks(k)
    c = np.full((k, k), across, dtype=float)
    lag = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
    same = np.outer(first, first) | np.outer(second, second)
    c[same] = (within * np.exp(-decay * lag))[same]
    if noise:
        e = rng.normal(0, noise, (k, k))
        c = np.clip(c + (e + e.T) / 2, -1, 1)
    np.fill_diagonal(c, 1.0)
    return c


def test_equal_lag_contrast_rejects_a_band_and_accepts_two_blocks():
    for k in (7, 8, 9):
        band = two_block_at_equal_lag(banded(k))
        assert band["relative_contrast"] == pytest.approx(0.0, abs=1e-12) and band["lags"]
        assert np.allclose(band["within"], band["across"])
        blocks = two_block_at_equal_lag(two_blocks(k, decay=0.2))
        assert blocks["relative_contrast"] == pytest.approx(1.0) and max(blocks["across"]) == 0.0
    # the plain contrast (fort_fig3's old rule) calls the band "two blocks": it cannot fail on a decaying matrix
    from lsx.landscape.paths.connectors import two_block_contrast

    assert two_block_contrast(banded(8)) > 0.2
    # the middle node of an odd count belongs to neither half; no lag with both kinds of pairs → NaN
    assert half_masks(7)[0].sum() == half_masks(7)[1].sum() == 3
    assert np.isnan(two_block_at_equal_lag(np.eye(2))["relative_contrast"])
    assert two_block_at_equal_lag(-two_blocks(8) + 2 * np.eye(8))["relative_contrast"] == 0.0  # no alignment within: 0
    with pytest.raises(ValueError, match="square"):
        two_block_at_equal_lag(np.ones((3, 4)))


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda rng: banded(8, noise=0.05, rng=rng), (NOT_REPRODUCED, INCONCLUSIVE)),
        (lambda rng: banded(8, decay=0.05, noise=0.05, rng=rng), (NOT_REPRODUCED, INCONCLUSIVE)),
        (lambda rng: two_blocks(8, decay=0.1, across=0.05, noise=0.05, rng=rng), (REPRODUCED,)),
    ],
)
def test_two_block_claim_on_six_units(make, expected):
    from lsx.cli.reproduce import make_plan

    rng = np.random.default_rng(1)
    claim = {c["id"]: c for c in make_plan("fort_fig3").claims}["deviations_form_two_blocks"]
    jobs = [
        Job([2 * u, 2 * u + 1], {"two_block_relative_contrast": two_block_at_equal_lag(make(rng))["relative_contrast"]})
        for u in range(6)
    ]
    res = evaluate_claim(claim, jobs)
    assert res.verdict in expected, res.reason
    assert res.estimate.n == 6


def test_label_change_locates_the_half_that_changes():
    t = np.linspace(0, 1, 25)
    d = 0.4  # the optima disagree on 40% of the examples
    step = np.clip(2 * t, 0, 1)  # the caption: labels move to the end's up to the middle, then stay (Fig. 3 right)
    r = label_change_by_half(t, 1 - d * step, 1 - d * (1 - step))
    assert r["one_half_share"] == pytest.approx(1.0) and r["second_half"] == pytest.approx(0.0)
    late = np.clip(2 * t - 1, 0, 1)  # the mirror image: constant up to the middle, then changing
    mirror = label_change_by_half(t, 1 - d * late, 1 - d * (1 - late))
    assert mirror["one_half_share"] == pytest.approx(1.0) and mirror["first_half"] == pytest.approx(0.0)
    even = label_change_by_half(t, 1 - d * t, 1 - d * (1 - t))
    assert even["one_half_share"] == pytest.approx(0.5) and even["constancy"] == pytest.approx(0.5)
    # each curve changes only next to its own optimum (the labels themselves change all along): the per-curve reading
    # says 1, the caption's reading (labels constant in one half) says 0.5
    own = label_change_by_half(t, 1 - d * step, 1 - d * (1 - late))
    assert own["constancy"] == pytest.approx(1.0) and own["one_half_share"] == pytest.approx(0.5)
    odd = np.linspace(0, 1, 10)  # no point at t = ½: interpolated
    assert label_change_by_half(odd, 1 - d * odd, 1 - d * (1 - odd))["one_half_share"] == pytest.approx(0.5)
    flat = label_change_by_half(t, np.ones_like(t), np.ones_like(t))
    assert np.isnan(flat["one_half_share"]) and np.isnan(flat["constancy"])
    with pytest.raises(ValueError, match="1-D of one length"):
        label_change_by_half(t, t[:-1], t)


def test_unit_value_needs_six_units_and_averages_jobs_of_one_unit():
    jobs = [Job(u, {"barrier_ratio": 0.1 + 0.01 * u}) for u in range(5)]
    e = sp.fort_unit_value(jobs, y="metrics.barrier_ratio", unit="analysis.seeds")
    assert e.n == 5 and np.isnan(e.lo) and decide_interval(e.lo, e.hi, {"less": 0.5}) == INCONCLUSIVE
    jobs += [Job(5, {"barrier_ratio": 0.2}), Job(5, {"barrier_ratio": 0.4})]  # two jobs of one unit: one value, 0.3
    e = sp.fort_unit_value(jobs, y="metrics.barrier_ratio", unit="analysis.seeds")
    assert e.n == 6 and e.details["per_unit"]["5"] == pytest.approx(0.3)
    assert (e.lo, e.hi) == (pytest.approx(0.1), pytest.approx(0.3)) and decide_interval(e.lo, e.hi, {"less": 0.5}) == REPRODUCED
    assert sp.fort_unit_value(jobs, y="metrics.barrier_ratio", unit="analysis.seeds", test="t").value == pytest.approx(
        unit_interval([0.1, 0.11, 0.12, 0.13, 0.14, 0.3], "t")[0]
    )
    with pytest.raises(ValueError, match="valid: sign, t"):
        sp.fort_unit_value(jobs, y="metrics.barrier_ratio", unit="analysis.seeds", test="bootstrap")
    # a unit whose value is undefined (written as NaN) is dropped and counted; a metric never written is missing
    e = sp.fort_unit_value(jobs + [Job(9, {"barrier_ratio": float("nan")})], y="metrics.barrier_ratio", unit="analysis.seeds")
    assert e.n == 6 and e.details["units_undefined"] == 1
    with pytest.raises(KeyError, match="no metric 'barrier_ratio'"):
        sp.fort_unit_value(jobs + [Job(9, {})], y="metrics.barrier_ratio", unit="analysis.seeds")


def test_unit_value_sign_rule_rarely_passes_a_null_at_the_bound():
    """The sign interval with 6 units: a unit median exactly at the bound is called reproduced ≤ 2.5% of the time."""

    def draw(rng):
        _, lo, hi = unit_interval(0.5 + rng.normal(0, 0.2, 6), "sign")
        return lo, hi

    rates = null_rates(draw, TWO_BLOCK, trials=2000)
    assert rates[REPRODUCED] <= 0.025 and rates[NOT_REPRODUCED] <= 0.025


def test_list_at_reads_the_highest_max_lr_and_subtracts():
    jobs = [
        JobRecord(
            config={"seed": s},
            seed=s,
            job_dir=Path(f"seed{s}"),
            metrics={
                "max_lrs": [1e-3, 1e-2, 1e-1],
                "mean_snapshot_acc": [0.5, 0.52, 0.45 + 0.01 * s],
                "swa_acc": [0.51, 0.52, 0.30],
            },
        )
        for s in range(6)
    ]  # unit: the training seed
    e = sp.fort_list_at(jobs, x="metrics.max_lrs", y="metrics.mean_snapshot_acc", minus="metrics.swa_acc", at="max")
    assert e.n == 6 and e.lo == pytest.approx(0.15) and e.hi == pytest.approx(0.20)
    low = sp.fort_list_at(jobs, x="metrics.max_lrs", y="metrics.mean_snapshot_acc", minus="metrics.swa_acc", at=0.001)
    assert low.value == pytest.approx(-0.01) and decide_interval(low.lo, low.hi, {"greater": 0.0}) == NOT_REPRODUCED
    with pytest.raises(sp.InsufficientData, match="no entry 0.5"):
        sp.fort_list_at(jobs, x="metrics.max_lrs", y="metrics.swa_acc", at=0.5)
    with pytest.raises(ValueError, match="valid: 'max', 'min'"):
        sp.fort_list_at(jobs, x="metrics.max_lrs", y="metrics.swa_acc", at="highest")
    jobs[0].metrics["swa_acc"] = [0.5]
    with pytest.raises(ValueError, match="has 3 values but metrics.swa_acc has 1"):
        sp.fort_list_at(jobs, x="metrics.max_lrs", y="metrics.mean_snapshot_acc", minus="metrics.swa_acc")


def _m_jobs(slope_by_thr, noise=0.0, units=6, saturate=None):
    """Counts per m at thresholds (0.5, 0.2) for disjoint sets of optima, the count rising by ``slope`` per m."""
    rng = np.random.default_rng(0)
    jobs = []
    for u in range(units):
        rows = [[int(round(20 + s * m + noise * rng.normal())) for m in (1, 2, 3, 4)] for s in slope_by_thr]
        sat = [0, 0] if saturate is None or u != 0 else saturate
        jobs.append(
            Job(
                [5 * u + i for i in range(5)],
                {
                    "short_directions_m": [1, 2, 3, 4],
                    "short_directions_thresholds": [0.5, 0.2],
                    "short_directions_vs_m_by_threshold": rows,
                    "short_directions_saturated_by_threshold": sat,
                    "short_directions_gain_by_threshold": [float(r[-1] - 18) for r in rows],
                },
                key="optima.seeds",
            )
        )
    return jobs


@pytest.mark.parametrize(
    "slopes, verdict",
    [
        ((3, 3), REPRODUCED),  # grows at both thresholds
        ((3, 0), INCONCLUSIVE),  # grows at 0.5·λmax only (constant at 0.2: ρ = 0): decided by the threshold
        ((3, -3), INCONCLUSIVE),
        ((-3, -3), NOT_REPRODUCED),  # shrinks at both
    ],
)
def test_threshold_robust_holds_only_if_it_holds_at_every_threshold(slopes, verdict):
    from lsx.cli.reproduce import make_plan

    claims = {c["id"]: c for c in make_plan("fort_fig4").claims}
    res = evaluate_claim(claims["short_directions_grow_with_m"], _m_jobs(slopes))
    assert res.verdict == verdict, res.reason
    assert [r["threshold"] for r in res.estimate.table] == [0.2, 0.5] and res.estimate.n == 6


def test_threshold_robust_scalar_gain_and_saturated_units():
    jobs = _m_jobs((3, 3))
    e = sp.fort_threshold_robust(jobs, y="metrics.short_directions_gain_by_threshold", unit="optima.seeds")
    assert e.lo > 0 and e.n == 6
    sat = sp.fort_threshold_robust(
        _m_jobs((3, 3), saturate=[0, 2]), y="metrics.short_directions_gain_by_threshold", unit="optima.seeds"
    )
    assert sat.n == 5 and np.isnan(sat.lo)  # a saturated count leaves its unit out at that threshold: 5 units, no interval
    assert sp.envelope([(1.0, 0.5, 2.0), (0.2, -0.1, 0.4)]) == (pytest.approx(0.6), -0.1, 2.0)
    assert np.isnan(sp.envelope([(1.0, 0.5, 2.0), (0.2, float("nan"), 0.4)])[1])
    jobs[0].metrics["short_directions_gain_by_threshold"] = [1.0]
    with pytest.raises(ValueError, match="has 1 entries but metrics.short_directions_thresholds has 2"):
        sp.fort_threshold_robust(jobs, y="metrics.short_directions_gain_by_threshold", unit="optima.seeds")


def test_unit_value_figure_draws_units_and_intervals(tmp_path):
    est = sp.fort_threshold_robust(
        _m_jobs((3, 3), noise=1.0), y="metrics.short_directions_gain_by_threshold", unit="optima.seeds"
    )
    out = sp.plot_unit_values([], est, tmp_path / "robust.png")
    single = sp.fort_unit_value(
        [Job(u, {"barrier_ratio": 0.1 * u}) for u in range(6)], y="metrics.barrier_ratio", unit="analysis.seeds"
    )
    assert out.stat().st_size > 3000 and sp.plot_unit_values([], single, tmp_path / "one.png").stat().st_size > 3000
