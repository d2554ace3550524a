"""Claims on hand-made job records: every verdict reachable, intervals honoured, bad input named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from lsx.claims.figures import check_figures, draw_figure, register_figure
from lsx.claims.inference import MIN_UNITS
from lsx.claims.records import JobRecord, MissingKey
from lsx.claims.statistics import (
    Estimate,
    InsufficientData,
    get_statistic,
    get_statistic_plot,
    register_statistic,
    statistic_names,
)
from lsx.claims.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    FailedJob,
    check_claims,
    decide,
    evaluate_claim,
)


def job(seed: int, lr: float = 1e-3, train_loss: float = 0.1, **metrics) -> JobRecord:
    return JobRecord(
        config={"seed": seed, "optimizer": {"lr": lr}, "training": {"epochs": 5}},
        metrics=dict(metrics),
        seed=seed,
        job_dir=Path(f"/tmp/job_s{seed}_lr{lr}"),
        training=[
            {
                "seed": seed,
                "run_dir": f"/cache/s{seed}_lr{lr}",
                "train_loss": train_loss,
                "train_acc": 0.99,
                "test_loss": 0.3,
                "test_acc": 0.9,
                "epochs_run": 5,
                "steps": 50,
                "stopped_by": "epochs",
            }
        ],
    )


def lr_grid(slope: float, seeds=range(6), noise: float = 0.0, lrs=(1e-4, 1e-3, 1e-2)) -> list[JobRecord]:
    rng = np.random.default_rng(0)
    return [job(s, lr, width=slope * np.log10(lr) + noise * rng.normal()) for s in seeds for lr in lrs]


SPEARMAN = {
    "id": "w",
    "statement": "width grows with lr",
    "statistic": "spearman",
    "args": {"x": "optimizer.lr", "y": "metrics.width", "log_x": True},
    "decision": {"greater": 0.0},
}


# ----------------------------------------------------------------------------- records
def test_record_get_metrics_training_and_config(tmp_path):
    d = tmp_path / "job"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump({"seed": 4, "optimizer": {"lr": 0.01}, "training": {"epochs": 7}}))
    (d / "results.json").write_text(
        json.dumps(
            {
                "seed": 4,
                "job": "x",
                "metrics": {"a": 1.5, "nested": {"b": 2}},
                "training": [{"train_loss": 0.2}, {"train_loss": 0.4}],
            }
        )
    )
    r = JobRecord.from_dir(d)
    assert (r.seed, r.get("metrics.a"), r.get("metrics.nested.b")) == (4, 1.5, 2)
    assert r.get("training.train_loss") == pytest.approx(0.3)  # mean over the optima
    assert r.get("training.epochs") == 7  # not a per-optimum field: the config
    assert r.get("optimizer.lr") == 0.01
    with pytest.raises(MissingKey, match="no metric 'zz'"):
        r.get("metrics.zz")
    assert r.get("metrics.zz", None) is None
    with pytest.raises(ValueError, match="not a finished job"):
        JobRecord.from_dir(tmp_path / "nothing")


# ----------------------------------------------------------------------------- decisions
@pytest.mark.parametrize(
    "decision, lo, hi, verdict",
    [
        ({"greater": 0.0}, 0.1, 0.5, REPRODUCED),
        ({"greater": 0.0}, -0.5, -0.1, NOT_REPRODUCED),
        ({"greater": 0.0}, -0.5, 0.0, NOT_REPRODUCED),  # hi <= b
        ({"greater": 0.0}, -0.1, 0.5, INCONCLUSIVE),
        ({"greater": 0.0}, 0.0, 0.5, INCONCLUSIVE),  # lo must be strictly above b
        ({"less": 1.0}, 0.2, 0.8, REPRODUCED),
        ({"less": 1.0}, 1.0, 2.0, NOT_REPRODUCED),
        ({"less": 1.0}, 0.5, 1.5, INCONCLUSIVE),
        ({"between": [0.0, 1.0]}, 0.0, 1.0, REPRODUCED),
        ({"between": [0.0, 1.0]}, 1.1, 2.0, NOT_REPRODUCED),
        ({"between": [0.0, 1.0]}, -2.0, -0.5, NOT_REPRODUCED),
        ({"between": [0.0, 1.0]}, 0.5, 1.5, INCONCLUSIVE),
        ({"between": [0.0, 1.0]}, -0.5, 1.5, INCONCLUSIVE),
    ],
)
def test_decide_honours_the_interval(decision, lo, hi, verdict):
    v, reason = decide(Estimate((lo + hi) / 2, lo, hi, MIN_UNITS, "m"), decision)
    assert v == verdict, reason


def test_decide_needs_six_units_and_a_finite_interval():
    for n in (1, 3, MIN_UNITS - 1):  # an interval far above the bound does not count below MIN_UNITS units
        v, reason = decide(Estimate(1.0, 0.5, 2.0, n, "m"), {"greater": 0})
        assert v == INCONCLUSIVE and reason == f"n = {n} units; a calibrated 95% decision needs ≥ 6 (add seeds)"
    assert decide(Estimate(1.0, 0.5, 2.0, MIN_UNITS, "m"), {"greater": 0})[0] == REPRODUCED
    v, reason = decide(Estimate(1.0, math.nan, math.nan, MIN_UNITS, "m"), {"greater": 0})
    assert v == INCONCLUSIVE and "finite" in reason


@pytest.mark.parametrize(
    "bad", [{"greater": 0, "less": 1}, {"above": 0}, {"between": [2, 1]}, {"between": 3}, {"less": "x"}, [0]]
)
def test_malformed_decisions_are_refused(bad):
    with pytest.raises(ValueError, match="valid: {greater: b}"):
        decide(Estimate(0, 0, 0, 2, "m"), bad)


# ----------------------------------------------------------------------------- generic statistics
def test_spearman_every_verdict_reachable():
    assert evaluate_claim(SPEARMAN, lr_grid(+1.0)).verdict == REPRODUCED
    assert evaluate_claim(SPEARMAN, lr_grid(-1.0)).verdict == NOT_REPRODUCED
    flat = evaluate_claim(SPEARMAN, lr_grid(0.0, seeds=range(6), noise=1.0))
    assert flat.verdict == INCONCLUSIVE and "crosses 0" in flat.reason
    est = evaluate_claim(SPEARMAN, lr_grid(1.0)).estimate
    assert est.value == pytest.approx(1.0) and est.n == 6 and len(est.table) == 3
    assert est.table[0]["optimizer.lr"] == 1e-4 and est.table[0]["train_loss"] == pytest.approx(0.1)


def test_spearman_is_computed_within_each_seed_never_pooled():
    # each seed alone is perfectly increasing but seeds sit at very different levels: every seed's ρ is
    # 1 (pooling would blur it to 0.24, and pooling 3 seeds × 3 tied x values caps ρ at 0.896)
    jobs = [job(s, lr, width=10.0 * s + np.log10(lr)) for s in range(6) for lr in (1e-4, 1e-3, 1e-2)]
    est = get_statistic("spearman")(jobs, x="optimizer.lr", y="metrics.width")
    assert est.value == 1.0 and (est.lo, est.hi) == (1.0, 1.0) and est.details["per_unit"] == {str(s): 1.0 for s in range(6)}
    # one seed of six reversed: mean ρ 2/3, t interval over the six ρ values; the sign interval is [min, max]
    jobs = [job(s, lr, width=(-1 if s == 5 else 1) * np.log10(lr)) for s in range(6) for lr in (1e-4, 1e-3, 1e-2)]
    est = get_statistic("spearman")(jobs, x="optimizer.lr", y="metrics.width")
    half = 2.570581835636314 * np.std([1] * 5 + [-1], ddof=1) / np.sqrt(6)  # t_{0.975, 5}
    assert est.value == pytest.approx(2 / 3) and (est.lo, est.hi) == pytest.approx((2 / 3 - half, 2 / 3 + half))
    est = get_statistic("spearman")(jobs, x="optimizer.lr", y="metrics.width", interval="sign")
    assert (est.value, est.lo, est.hi) == (1.0, -1.0, 1.0) and "sign-test" in est.method
    # one job per seed: no seed has a trend of its own, and nothing is pooled
    jobs = [job(s, lr, width=np.log10(lr)) for s, lr in enumerate((1e-4, 1e-3, 1e-2, 1e-1))]
    with pytest.raises(InsufficientData, match="no seed has a trend of its own.*never pooled"):
        get_statistic("spearman")(jobs, x="optimizer.lr", y="metrics.width")
    with pytest.raises(ValueError, match="unknown interval 'boot'; valid: sign, t"):
        get_statistic("spearman")(lr_grid(1.0), x="optimizer.lr", y="metrics.width", interval="boot")


def test_spearman_one_seed_is_inconclusive_with_reason():
    res = evaluate_claim(SPEARMAN, lr_grid(1.0, seeds=(0,)))
    assert res.verdict == INCONCLUSIVE and "n = 1" in res.reason and res.estimate.value == pytest.approx(1.0)


def test_mean_t_and_sign_intervals():
    values = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0]
    jobs = [job(s, gap=v) for s, v in enumerate(values)]
    est = get_statistic("mean")(jobs, y="metrics.gap")
    half = 2.570581835636314 * np.std(values, ddof=1) / np.sqrt(6)  # t_{0.975, 5}
    assert est.value == pytest.approx(1.0) and est.n == 6
    assert (est.lo, est.hi) == pytest.approx((1.0 - half, 1.0 + half))
    med = get_statistic("mean")(jobs, y="metrics.gap", interval="sign")  # 6 units: [min, max] has coverage 1 − 2/64
    assert (med.value, med.lo, med.hi) == (1.0, 0.8, 1.2) and "median" in med.method
    claim = {"id": "g", "statement": "s", "statistic": "mean", "args": {"y": "metrics.gap"}, "decision": {"between": [0.5, 1.5]}}
    assert evaluate_claim(claim, jobs).verdict == REPRODUCED


def test_mean_averages_jobs_of_one_seed_first():
    jobs = [job(0, gap=1.0), job(0, gap=3.0), job(1, gap=2.0), job(1, gap=2.0)]  # e.g. two direction seeds each
    est = get_statistic("mean")(jobs, y="metrics.gap")
    assert est.n == 2 and est.value == pytest.approx(2.0) and est.lo == pytest.approx(2.0)


def test_difference_paired_by_seed_and_unpaired_fallback():
    paired = [job(s, 1e-3, err=0.10 + 0.01 * s) for s in range(3)] + [job(s, 1e-2, err=0.15 + 0.01 * s) for s in range(3)]
    est = get_statistic("difference")(paired, key="optimizer.lr", a=1e-2, b=0.001, y="metrics.err")
    assert est.details["paired"] and est.n == 3
    assert est.value == pytest.approx(0.05) and est.lo == pytest.approx(0.05) and est.hi == pytest.approx(0.05)
    unpaired = [job(s, 1e-3, err=0.1 + 0.01 * s) for s in range(3)] + [job(s + 10, 1e-2, err=0.2 + 0.01 * s) for s in range(3)]
    est = get_statistic("difference")(unpaired, key="optimizer.lr", a=1e-2, b=1e-3, y="metrics.err")
    assert not est.details["paired"] and est.value == pytest.approx(0.1) and est.lo < 0.1 < est.hi and est.n == 3


def test_ratio_paired_geometric_mean():
    jobs = [job(s, 1e-3, loss=1.0 + s) for s in range(6)] + [job(s, 1e-2, loss=2.0 * (1.0 + s)) for s in range(6)]
    est = get_statistic("ratio")(jobs, key="optimizer.lr", a=1e-2, b=1e-3, y="metrics.loss")
    assert est.value == pytest.approx(2.0) and est.details["paired"]
    claim = {
        "id": "r",
        "statement": "s",
        "statistic": "ratio",
        "decision": {"greater": 1.5},
        "args": {"key": "optimizer.lr", "a": 1e-2, "b": 1e-3, "y": "metrics.loss"},
    }
    assert evaluate_claim(claim, jobs).verdict == REPRODUCED


def test_difference_with_an_empty_group_is_inconclusive():
    claim = {
        "id": "d",
        "statement": "s",
        "statistic": "difference",
        "decision": {"greater": 0},
        "args": {"key": "optimizer.lr", "a": 0.5, "b": 1e-3, "y": "metrics.err"},
    }
    res = evaluate_claim(claim, [job(s, 1e-3, err=0.1) for s in range(3)])
    assert res.verdict == INCONCLUSIVE and "optimizer.lr=0.5" in res.reason


# ----------------------------------------------------------------------------- bad input
def test_missing_metric_is_inconclusive_and_named():
    claim = dict(SPEARMAN, args={"x": "optimizer.lr", "y": "metrics.nope"})
    res = evaluate_claim(claim, lr_grid(1.0))
    assert res.verdict == INCONCLUSIVE and "no metric 'nope'" in res.reason and res.estimate is None


def test_failed_jobs_are_listed_excluded_and_force_inconclusive():
    failed = [FailedJob(["seed=3", "optimizer.lr=0.01"], "ValueError: boom", 3)]
    res = evaluate_claim(SPEARMAN, lr_grid(1.0), failed)
    assert res.verdict == INCONCLUSIVE and "1 job(s) failed" in res.reason
    assert res.estimate.n == 6  # the estimate uses only the finished jobs
    assert res.to_dict()["failed"][0]["reason"] == "ValueError: boom"


def test_preset_without_claims_and_malformed_claims_are_refused():
    with pytest.raises(ValueError, match="preset 'p' declares no claims"):
        check_claims("p", [])
    with pytest.raises(ValueError, match="unknown statistic 'nope'; valid statistics: .*spearman"):
        check_claims("p", [dict(SPEARMAN, statistic="nope")])
    with pytest.raises(ValueError, match="lacks decision"):
        check_claims("p", [{k: v for k, v in SPEARMAN.items() if k != "decision"}])
    with pytest.raises(ValueError, match="used twice"):
        check_claims("p", [SPEARMAN, SPEARMAN])
    with pytest.raises(ValueError, match="unknown keys"):
        check_claims("p", [dict(SPEARMAN, verdict="reproduced")])  # a verdict is computed, never written
    with pytest.raises(ValueError, match="rejects args"):
        evaluate_claim(dict(SPEARMAN, args={"x": "optimizer.lr"}), lr_grid(1.0))
    with pytest.raises(ValueError, match="statistic 'spearman' rejects args .*unexpected keyword"):
        check_claims("p", [dict(SPEARMAN, args=dict(SPEARMAN["args"], colour="red"))])


def test_a_crashing_statistic_is_inconclusive_not_fatal():
    @register_statistic("test_crash")
    def crash(jobs):
        raise ZeroDivisionError("bug")

    res = evaluate_claim({"id": "c", "statement": "s", "statistic": "test_crash", "decision": {"greater": 0}}, lr_grid(1.0))
    assert res.verdict == INCONCLUSIVE and "ZeroDivisionError: bug" in res.reason
    assert check_claims("p", [SPEARMAN])[0]["args"]["log_x"] is True


def test_unmatched_training_is_flagged():
    jobs = [job(s, 1e-3, train_loss=0.01, width=1.0) for s in range(6)]
    jobs += [job(s, 1e-2, train_loss=0.5, width=2.0) for s in range(6)]
    res = evaluate_claim(SPEARMAN, jobs, train_loss_ratio=3.0)
    assert res.train_loss_flag and res.train_loss_spread == pytest.approx(50.0) and res.reason.startswith("unmatched training:")
    assert len(res.compared) == 12 and all(r["flag"] for r in res.compared)
    assert res.verdict == INCONCLUSIVE  # unmatched training decides nothing (tests/test_matching.py: waivers, targets)
    matched = evaluate_claim(SPEARMAN, lr_grid(1.0), train_loss_ratio=3.0)
    assert not matched.train_loss_flag


# ----------------------------------------------------------------------------- registry, plots, figures
def test_registry_has_generic_statistics_and_accepts_new_ones(tmp_path):
    assert {"spearman", "mean", "difference", "ratio"} <= set(statistic_names())

    @register_statistic("test_constant")
    def constant(jobs, value: float = 1.0):
        return Estimate(value, value - 0.1, value + 0.1, len(jobs), "constant")

    claim = {"id": "c", "statement": "s", "statistic": "test_constant", "args": {"value": 2.0}, "decision": {"greater": 1.0}}
    assert evaluate_claim(claim, lr_grid(1.0)).verdict == REPRODUCED
    est = get_statistic("spearman")(lr_grid(1.0), x="optimizer.lr", y="metrics.width")
    out = get_statistic_plot("spearman")(lr_grid(1.0), est, tmp_path / "s.png", x="optimizer.lr", y="metrics.width", log_x=True)
    assert out.stat().st_size > 1000


def test_report_figures_registry(tmp_path):
    @register_figure("test_fig")
    def fig(jobs, path, y):
        path.write_bytes(b"png" * len(jobs))
        return path

    specs = check_figures("p", [{"figure": "test_fig", "args": {"y": "metrics.width"}}])
    assert draw_figure(specs[0], lr_grid(1.0), tmp_path / "f.png").read_bytes() == b"png" * 18
    with pytest.raises(ValueError, match="unknown report figure 'nope'; valid figures: .*metric_vs_key"):
        check_figures("p", [{"figure": "nope"}])
    specs = check_figures("p", [{"figure": "metric_vs_key", "args": {"x": "optimizer.lr", "y": "metrics.width", "log_x": True}}])
    assert draw_figure(specs[0], lr_grid(1.0), tmp_path / "g.png").stat().st_size > 1000
