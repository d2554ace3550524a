"""Draxler et al. Table 1 claims: every rule accepts the paper's own Table 1 and rejects a failing row;
the statistic takes one value per independent set of minima."""

import math
from pathlib import Path

import pytest
import yaml

from lsx.claims.records import JobRecord
from lsx.claims.statistics import InsufficientData, get_statistic
from lsx.claims.stats_draxler import MEASURES, PAPER_TABLE1, paper_values
from lsx.claims.verdicts import NOT_REPRODUCED, REPRODUCED, decide_interval, evaluate_claim

PRESET = Path(__file__).resolve().parent.parent / "conf" / "experiment" / "draxler_table1.yaml"
CLAIMS = {c["id"]: c for c in yaml.safe_load(PRESET.read_text())["claims"]}

# a unit far outside the paper's regime on every measure: a saddle near chance, a test-loss bump, a large error
# rise, a straight line barely above the path
FAILING = {
    "train_loss_minima": 0.05,
    "train_loss_saddle": 1.5,
    "saddle_minimum_factor": 30.0,
    "chance_loss": math.log(10),
    "test_loss_minima": 0.8,
    "test_loss_saddle": 1.6,
    "test_error_minima": 0.10,
    "test_error_saddle": 0.16,
    "test_error_rise": 0.06,
    "linear_max_train_loss": 2.0,
}


def _table_claims():
    return [c for c in CLAIMS.values() if c["statistic"] == "draxler_table1"]


def test_table1_is_entered_as_printed():
    assert len(PAPER_TABLE1) == 12 and sum(r["dataset"] == "C100+" for r in PAPER_TABLE1) == 6
    r20 = PAPER_TABLE1[0]
    assert (r20["architecture"], r20["train_loss_minima"], r20["train_loss_saddle"], r20["test_error_rise"]) == (
        "ResNet-20",
        0.016,
        0.032,
        pytest.approx(0.005),
    )
    assert PAPER_TABLE1[6]["chance_loss"] == pytest.approx(4.605, abs=1e-3)  # note 1: -log(0.01)


@pytest.mark.parametrize("claim", [c for c in _table_claims() if c["args"]["measure"] != "line_over_path"], ids=lambda c: c["id"])
def test_each_rule_accepts_every_row_of_the_papers_table(claim):
    for row, v in zip(PAPER_TABLE1, paper_values(claim["args"]["measure"])):
        assert decide_interval(v, v, claim["decision"]) == REPRODUCED, (row["dataset"], row["architecture"], v)


@pytest.mark.parametrize("claim", _table_claims(), ids=lambda c: c["id"])
def test_each_rule_rejects_a_clearly_failing_row(claim):
    v = MEASURES[claim["args"]["measure"]][0](FAILING)
    assert decide_interval(v, v, claim["decision"]) == NOT_REPRODUCED, v


def test_the_former_absolute_rules_rejected_the_papers_own_table():
    # why the rules changed: "factor < 3" rejects 8 of 12 rows, "rise < 1 point" 5 of the 6 C100 rows
    assert sum(not r["saddle_minimum_factor"] < 3 for r in PAPER_TABLE1) == 8
    assert sum(not r["test_error_rise"] < 0.01 for r in PAPER_TABLE1 if r["dataset"] == "C100+") == 5


def _pair(row, pair):
    keys = (
        "train_loss_minima",
        "train_loss_saddle",
        "test_loss_minima",
        "test_loss_saddle",
        "test_error_minima",
        "test_error_saddle",
        "linear_max_train_loss",
    )
    return {"pair": pair, **{k: row[k] for k in keys}}


def _job(seeds, pairs, name, chance=math.log(10)):
    return JobRecord(
        config={"optima": {"seeds": list(seeds)}},
        metrics={"mst_pairs": pairs, "chance_loss": chance, "test_examples": 1000},
        seed=0,
        job_dir=Path(name),
    )


def _paper_jobs(rows):
    """One job (three disjoint minima, two MST pairs that both reproduce the row) per paper row."""
    jobs = []
    for k, r in enumerate(rows):
        # the paper prints no straight-line barrier: a synthetic 20x (a straight line at or above chance)
        line = r.get("linear_max_train_loss", max(r["chance_loss"], 20 * r["train_loss_saddle"]))
        r = dict(r, test_error_saddle=r["test_error_minima"] + r["test_error_rise"], linear_max_train_loss=line)
        s = [3 * k, 3 * k + 1, 3 * k + 2]
        jobs.append(_job(s, [_pair(r, s[:2]), _pair(r, s[1:])], f"job{k}", r["chance_loss"]))
    return jobs


def test_statistic_takes_one_value_per_disjoint_set_of_minima():
    stat = get_statistic("draxler_table1")
    jobs = _paper_jobs(PAPER_TABLE1[:6])
    e = stat(jobs, measure="saddle_over_chance")
    assert e.n == 6 and len(e.table) == 6 and e.table[0]["pairs"] == 2  # 12 MST pairs, 6 units
    want = sorted(paper_values("saddle_over_chance")[:6])
    assert (e.lo, e.hi) == (pytest.approx(want[0]), pytest.approx(want[-1]))  # sign interval at n = 6: [min, max]
    assert e.details["paper_table1"]["max"] == pytest.approx(max(paper_values("saddle_over_chance")))
    # two jobs that share a minimum are one unit, not two
    shared = jobs[:5] + [_job([0, 30, 31], jobs[5].metrics["mst_pairs"], "shares_seed_0")]
    assert stat(shared, measure="saddle_over_chance").n == 5
    # fewer than 6 units: no sign interval, so the verdict cannot be "reproduced"
    assert math.isnan(stat(jobs[:5], measure="saddle_over_chance").lo)


def test_statistic_inputs_that_cannot_support_it():
    stat = get_statistic("draxler_table1")
    old = _job([0, 1], [{"pair": [0, 1], "train_loss_minima": 0.1, "train_loss_saddle": 0.2}], "old")
    with pytest.raises(InsufficientData, match="lacks test_loss_saddle, test_loss_minima"):
        stat([old], measure="test_loss_saddle_ratio")
    with pytest.raises(InsufficientData, match="no MST pairs"):
        stat([_job([0, 1], [], "empty")], measure="saddle_minimum_factor")
    with pytest.raises(ValueError, match="unknown Draxler measure"):
        stat([old], measure="nope")


@pytest.mark.parametrize("claim", _table_claims(), ids=lambda c: c["id"])
def test_claims_on_six_units_like_the_papers_rows_are_reproduced_and_on_failing_units_not(claim):
    good = evaluate_claim(claim, _paper_jobs(PAPER_TABLE1[6:]))  # the six C100 rows, the harder half
    assert good.verdict == REPRODUCED, good.reason
    bad = evaluate_claim(claim, _paper_jobs([FAILING] * 6))
    assert bad.verdict == NOT_REPRODUCED, bad.reason
