"""Permutation claims' statistics on synthetic job records: one value per pair of optima, calibrated intervals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lsx.claims.inference import null_rates, unit_interval
from lsx.claims.records import JobRecord
from lsx.claims.statistics import InsufficientData, get_statistic, get_statistic_plot
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, decide


def _job(width: float, rows: list[dict], name: str = "mlp", tag: str = "") -> JobRecord:
    return JobRecord(
        config={"model": {"name": name, "width": width}},
        metrics={"pairs": rows},
        seed=0,
        job_dir=Path(f"/x/permutation_barrier_{name}_{width}{tag}"),
        job="permutation_barrier",
    )


def _rows(barriers: dict[str, list[float]], seeds: list[tuple[int, int]] | None = None) -> list[dict]:
    n = len(next(iter(barriers.values())))
    seeds = seeds or [(2 * i, 2 * i + 1) for i in range(n)]
    return [
        {
            "pair": f"{a}-{b}",
            "seeds": [a, b],
            "variant": v,
            "barrier_train_loss": x[i],
            "barrier_test_error": x[i] / 10,
            "train_loss_a": 0.01,
            "train_loss_b": 0.01,
        }
        for v, x in barriers.items()
        for i, (a, b) in enumerate(seeds)
    ]


def test_barrier_ratio_per_pair_and_its_verdict():
    naive = [1.0, 0.8, 1.2, 0.9, 1.1, 1.0]
    weight = [0.05, 0.04, 0.1, 0.02, 0.06, 0.05]
    est = get_statistic("perm_barrier_ratio")([_job(4.0, _rows({"naive": naive, "weight": weight}))], num="weight", den="naive")
    ratios = [w / n for w, n in zip(weight, naive)]
    assert est.n == 6 and est.value == pytest.approx(float(np.median(ratios)))
    assert (est.lo, est.hi) == pytest.approx((min(ratios), max(ratios)))  # 6 units: the sign interval is [min, max]
    assert decide(est, {"less": 0.5})[0] == REPRODUCED
    # the rule can fail: aligned barriers as high as the naive ones
    flat = get_statistic("perm_barrier_ratio")([_job(4.0, _rows({"naive": naive, "weight": naive}))], num="weight", den="naive")
    assert decide(flat, {"less": 0.5})[0] == NOT_REPRODUCED


def test_fewer_than_six_pairs_is_inconclusive_and_shared_optima_are_refused():
    est = get_statistic("perm_barrier")([_job(4.0, _rows({"weight": [0.0, 0.01, 0.0, 0.0, 0.01]}))], variant="weight")
    assert est.n == 5 and math.isnan(est.lo) and decide(est, {"less": 0.02})[0] == INCONCLUSIVE
    shared = _rows({"weight": [0.1, 0.2]}, seeds=[(0, 1), (0, 2)])
    with pytest.raises(InsufficientData, match="pairs=disjoint"):
        get_statistic("perm_barrier")([_job(4.0, shared)], variant="weight")
    with pytest.raises(InsufficientData, match="no variant 'activation'"):
        get_statistic("perm_barrier")([_job(4.0, _rows({"weight": [0.1, 0.2]}))], variant="activation")


def test_width_trend_pairs_seed_pairs_across_widths(tmp_path):
    narrow = [1.0, 1.2, 0.9, 1.1, 1.0, 1.3]
    wide = [0.3, 0.5, 0.2, 0.4, 0.3, 0.6]
    jobs = [
        _job(0.25, _rows({"naive": narrow})),
        _job(1.0, _rows({"naive": [0.6] * 6})),
        _job(4.0, _rows({"naive": wide})),
        _job(4.0, _rows({"naive": narrow}), name="simple_cnn"),
    ]
    est = get_statistic("perm_width_trend")(jobs, variant="naive", where={"model.name": "mlp"})
    logs = [math.log(w / n) for w, n in zip(wide, narrow)]
    m, lo, hi = unit_interval(logs, "t")
    assert est.n == 6 and est.value == pytest.approx(m) and (est.lo, est.hi) == pytest.approx((lo, hi))
    assert est.details["widths"] == [0.25, 1.0, 4.0] and decide(est, {"less": 0.0})[0] == REPRODUCED
    plot = get_statistic_plot("perm_width_trend")
    assert plot is not None and plot(jobs, est, tmp_path / "w.png", variant="naive", where={"model.name": "mlp"}).stat().st_size
    up = get_statistic("perm_width_trend")(
        [_job(0.25, _rows({"naive": wide})), _job(4.0, _rows({"naive": narrow}))], variant="naive"
    )
    assert decide(up, {"less": 0.0})[0] == NOT_REPRODUCED
    with pytest.raises(InsufficientData, match="one model.width value"):
        get_statistic("perm_width_trend")(jobs[:1], variant="naive")


def test_null_rates_at_six_pairs():
    """Under the null (no effect at the decision bound) each rule says 'reproduced' at most ~2.5% of the time."""

    def log_ratio_null(rng):  # width trend: per-pair log ratios centred on 0
        _, lo, hi = unit_interval(rng.normal(0.0, 0.5, 6), "t")
        return lo, hi

    def ratio_null(rng):  # barrier ratio: per-pair ratios with median exactly at the bound 0.5
        _, lo, hi = unit_interval(0.5 * np.exp(rng.normal(0.0, 0.5, 6)), "sign")
        return lo, hi

    assert null_rates(log_ratio_null, {"less": 0.0}, trials=2000)[REPRODUCED] < 0.04
    assert null_rates(ratio_null, {"less": 0.5}, trials=2000)[REPRODUCED] < 0.04


def test_presets_claims_name_registered_statistics_with_valid_args():
    import yaml

    from lsx.claims.verdicts import check_args, check_claims

    root = Path(__file__).resolve().parent.parent / "conf" / "experiment"
    for preset in ("entezari_width", "jordan_repair"):
        claims = check_claims(preset, yaml.safe_load((root / f"{preset}.yaml").read_text())["claims"])
        assert len(claims) >= 1
        for c in claims:
            check_args(c)


@pytest.mark.parametrize("preset", ["entezari_width", "jordan_repair"])
def test_presets_compose_at_paper_and_cpu_scale(compose, preset):
    from lsx.jobs.permutation_barrier import seed_pairs

    paper = compose(f"experiment={preset}")
    assert paper["model"]["name"] == "resnet20" and paper["data"]["name"] == "cifar10"
    assert paper["analysis"]["job"] == "permutation_barrier"
    assert len(seed_pairs(paper["optima"]["seeds"], paper["analysis"]["pairs"])) >= 6  # >= 6 independent pairs
    cpu = compose(f"experiment={preset}", "scale=cpu")
    assert cpu["data"]["name"] == "digits"
    wide = compose(f"experiment={preset}", "model.width=4")
    assert wide["model"]["width"] == 4


def test_seed_pairs():
    from lsx.jobs.permutation_barrier import seed_pairs

    assert seed_pairs([3, 1, 4, 0], "disjoint") == [(3, 1), (4, 0)]
    assert len(seed_pairs([0, 1, 2], "all")) == 3
    with pytest.raises(ValueError, match="valid: disjoint, all"):
        seed_pairs([0, 1], "some")
