"""Xu statistics and the xu_taxonomy claims on hand-made job records with known answers."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsx.claims.statistics", reason="the claims framework (lsx/claims) is not merged yet")

from lsx.claims.records import JobRecord  # noqa: E402
from lsx.claims.statistics import InsufficientData, get_statistic  # noqa: E402
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, evaluate_claim  # noqa: E402

SEEDS = range(10)


def job(seed, job_name="curve_taxonomy", **metrics):
    return JobRecord(
        config={"analysis": {"job": job_name}, "seed": seed},
        metrics=metrics,
        seed=seed,
        job=job_name,
        job_dir=Path(f"/tmp/{job_name}_{seed}"),
        training=[{"seed": seed, "train_loss": 0.1}],
    )


def test_curve_kind_is_a_per_seed_fraction_with_a_sign_interval():
    stat = get_statistic("xu_curve_kind")
    jobs = [job(s, types_gaussian=["v-basin", "v-basin", "v-side"]) for s in SEEDS]
    jobs.append(job(0, "mining", w_peak_type_after="w-peak"))  # another analysis of the preset: ignored
    est = stat(jobs, y="metrics.types_gaussian", expect="v-basin")
    assert est.n == 10 and est.value == pytest.approx(2 / 3) and est.lo == est.hi == pytest.approx(2 / 3)
    assert "sign-test" in est.method and est.details["type_counts"] == {"v-basin": 20, "v-side": 10}
    est = stat(jobs, y="metrics.types_gaussian", expect="w-peak")
    assert est.value == 0.0 and est.hi < 0.5


def test_curve_kind_needs_six_seeds_and_drops_types_a_grid_step_decides():
    stat = get_statistic("xu_curve_kind")
    with pytest.raises(InsufficientData, match="needs 6"):
        stat([job(s, types_pe=["v-basin"]) for s in range(5)], y="metrics.types_pe", expect="v-basin")
    with pytest.raises(InsufficientData, match="no finished"):
        stat([job(0, "mining")], y="metrics.types_pe", expect="v-basin")
    # 10 seeds, 5 of them v-side vs v-basin by one grid step: only 5 defined → inconclusive by rule
    jobs = [job(s, types_ng=["v-side"], alt_ng=[["v-basin", "v-side"] if s % 2 else ["v-side"]]) for s in SEEDS]
    with pytest.raises(InsufficientData, match="grid step"):
        stat(jobs, y="metrics.types_ng", expect="v-side", alt="metrics.alt_ng")
    assert stat(jobs, y="metrics.types_ng", expect="v-side").value == 1.0  # without alt the fragility is unseen
    # alternatives that agree on membership (w-basin vs w-peak, neither v-side) are not fragile
    jobs = [job(s, types_ng=["w-basin"], alt_ng=[["w-basin", "w-peak"]]) for s in SEEDS]
    assert stat(jobs, y="metrics.types_ng", expect="v-side", alt="metrics.alt_ng").hi == 0.0
    with pytest.raises(ValueError, match="entries"):
        stat([job(s, types_ng=["v-side"], alt_ng=[]) for s in SEEDS], y="metrics.types_ng", expect="v-side", alt="metrics.alt_ng")


def test_gmi_ratio_is_a_geometric_mean_over_seeds():
    stat = get_statistic("xu_gmi_ratio")

    def theory(seed, r):
        return job(
            seed, "xu_theory", gmi_ratios=[r, 2 * r], sigmas=[1e-3, 1e-2], delta_means=[r, 1.0], delta_predicted=[1.0, 1.0]
        )

    rs = [1.0, 1.21] * 5
    est = stat([theory(s, r) for s, r in zip(SEEDS, rs)])
    assert est.value == pytest.approx(1.1) and est.lo < 1.1 < est.hi and est.n == 10
    assert stat([theory(s, r) for s, r in zip(SEEDS, rs)], sigma_index=1).value == pytest.approx(2.2)
    with pytest.raises(InsufficientData, match="non-positive"):
        stat([theory(s, 1.0 if s > 4 else -0.5) for s in SEEDS])
    with pytest.raises(ValueError, match="sigma_index"):
        stat([theory(s, 1.0) for s in SEEDS], sigma_index=5)


def test_per_unit_reduces_lists_and_takes_logs():
    stat = get_statistic("xu_per_unit")
    jobs = [job(s, "xu_theory", counts=[1, 1, 3 + s % 2], ratio=100.0 * (s + 1)) for s in SEEDS]
    est = stat(jobs, y="metrics.counts", job="xu_theory")
    assert est.value == pytest.approx(np.median([5 / 3, 2] * 5))
    assert stat(jobs, y="metrics.counts", job="xu_theory", reduce="max").hi <= 4
    est = stat(jobs, y="metrics.ratio", job="xu_theory", log10=True)
    assert est.lo > 2 and est.hi < 3.1
    with pytest.raises(ValueError, match="reduce"):
        stat(jobs, y="metrics.counts", job="xu_theory", reduce="sum")
    with pytest.raises(ValueError, match="interval test"):
        stat(jobs, y="metrics.counts", job="xu_theory", test="bootstrap")


# ----------------------------------------------------------------------------- the preset's claims
@pytest.fixture(scope="module")
def claims():
    from lsx.cli.reproduce import make_plan

    return {c["id"]: c for c in make_plan("xu_taxonomy").claims}


def _paper_records(rng, wrong: bool = False) -> list[JobRecord]:
    """Records whose values are the paper's (or, with ``wrong``, the opposite), with seed-to-seed noise."""
    jobs = []
    for s in SEEDS:
        kinds = {
            "gaussian": "v-basin",
            "pe": "v-basin",
            "neg_gradient": "v-side",
            "later_checkpoint": "v-side",
            "independent": "w-basin",
            "ne": "w-peak",
        }
        flip = {"v-basin": "v-side", "v-side": "v-basin", "w-basin": "v-basin", "w-peak": "v-side"}
        ct = {}
        for k, t in kinds.items():
            n = 3 if k == "gaussian" else 1
            t = flip[t] if wrong else t
            ct[f"types_{k}"], ct[f"alt_types_{k}"] = [t] * n, [[t]] * n
        ct["stationary_counts_gaussian"] = [3, 5, 4] if wrong else [1, 1, 1 + int(rng.integers(0, 2))]
        jobs.append(job(s, **ct))
        vvv = ["vvv-basin"] * 5 + ["w-basin"] if wrong else ["w-basin"] * 5 + ["w-peak"]
        jobs.append(
            job(
                s,
                "mining",
                w_peak_type_after="v-basin" if wrong else "w-peak",
                w_peak_alt_types=[["v-basin" if wrong else "w-peak"]],
                vvv_types=vvv,
                vvv_alt_types=[[t] for t in vvv],
            )
        )
        r = float(rng.normal(1.0, 0.05))
        jobs.append(
            job(
                s,
                "xu_theory",
                cosine_std_ratio=3 * r if wrong else r,
                hessian_outlier_ratio=2.0 if wrong else 10 ** rng.uniform(1.5, 3),
                lambda_min_abs_trend=1.0 if wrong else -1.0,
                ne_peak_height_trend=0.8 if wrong else -0.8,
                ne_type_first=["v-side" if wrong else "w-peak"],
                ne_alt_types_first=[["v-side" if wrong else "w-peak"]],
                gmi_ratios=[3.0 * r if wrong else r],
                sigmas=[1e-3],
                delta_means=[r],
                delta_predicted=[1.0],
            )
        )
    return jobs


@pytest.mark.parametrize("wrong, verdict", [(False, REPRODUCED), (True, NOT_REPRODUCED)])
def test_every_claim_accepts_the_papers_values_and_can_fail(claims, wrong, verdict):
    jobs = _paper_records(np.random.default_rng(0), wrong)
    for cid, claim in claims.items():
        res = evaluate_claim(claim, jobs)
        assert res.verdict == verdict, (cid, res.reason)
        assert res.estimate.n == 10


def test_claims_quote_the_paper_and_the_mlp_expects_no_vvv_basin(claims):
    assert all("Xu et al., Sec." in c["source"] for c in claims.values())
    assert all("Unit: training seed" in c["note"] for c in claims.values())
    vvv = claims["algorithm2_no_vvv_basin_mlp"]
    assert vvv["args"]["expect"] == "vvv-basin" and vvv["decision"] == {"less": 0.5}
    assert "shows no vvv-basin patterns" in vvv["source"]
    # the curve claims drop types decided by one grid step or the filter
    assert all(c["args"].get("alt") for c in claims.values() if c["statistic"] == "xu_curve_kind")


def test_fragile_types_make_a_claim_inconclusive(claims):
    jobs = _paper_records(np.random.default_rng(1))
    for j in jobs:
        if j.metrics.get("types_neg_gradient") and j.seed < 5:
            j.metrics["alt_types_neg_gradient"] = [["v-basin", "v-side"]]
    res = evaluate_claim(claims["neg_gradient_v_side"], jobs)
    assert res.verdict == INCONCLUSIVE and "grid step" in res.reason


def test_report_plots_draw_from_the_records(tmp_path):
    from lsx.claims.figures import get_figure
    from lsx.claims.statistics import get_statistic_plot

    jobs = []
    for s in SEEDS:
        j = job(s, types_gaussian=["v-basin", "v-side"], counts=[1, 2])
        j.job_dir = tmp_path / f"ct{s}"
        j.job_dir.mkdir()
        lam = np.linspace(-1, 1, 5)
        np.savez(
            j.job_dir / "curve_taxonomy.npz",
            loss=np.stack([lam**2, lam + 1]),
            kinds=np.array(["gaussian"] * 2),
            types=np.array(["v-basin", "v-side"]),
            lams=np.stack([lam, lam]),
        )
        jobs.append(j)
    est = get_statistic("xu_curve_kind")(jobs, y="metrics.types_gaussian", expect="v-basin")
    out = get_statistic_plot("xu_curve_kind")(jobs, est, tmp_path / "kind.png", expect="v-basin")
    assert out.stat().st_size > 0
    est = get_statistic("xu_per_unit")(jobs, y="metrics.counts", job="curve_taxonomy")
    assert get_statistic_plot("xu_per_unit")(jobs, est, tmp_path / "unit.png").stat().st_size > 0
    assert get_figure("xu_taxonomy_curves")(jobs, tmp_path / "curves.png").stat().st_size > 0
    with pytest.raises(InsufficientData):
        get_figure("xu_taxonomy_curves")([job(0)], tmp_path / "none.png")


@pytest.mark.parametrize("n_units", [6, 7, 8, 10])  # the xu presets' sets hold 8 seeds, 6-8 with a defined type
def test_the_kind_rule_rarely_passes_a_coin_flip_null(n_units):
    # null: each seed's curve is the paper's type with probability 1/2 (fraction 0 or 1); {greater: 0.5} on the
    # sign interval of the median must say "reproduced" at most 2.5% of the time
    from lsx.claims.inference import null_rates, unit_interval

    def draw(rng):
        _, lo, hi = unit_interval(rng.integers(0, 2, n_units).astype(float), "sign")
        return lo, hi

    rates = null_rates(draw, {"greater": 0.5}, trials=2000)
    assert rates[REPRODUCED] <= 0.025

    def effect(rng):  # 90% of seeds have the type: the rule should usually pass at 10 units
        _, lo, hi = unit_interval((rng.random(n_units) < 0.9).astype(float), "sign")
        return lo, hi

    assert null_rates(effect, {"greater": 0.5}, trials=2000)[REPRODUCED] > (0.5 if n_units == 10 else 0.3)
