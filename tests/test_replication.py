"""Replication and units: the headline needs both disjoint unit sets to agree; a disagreement is ``unstable``;
unit indices become disjoint overrides; seed lists parse or are refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsx.claims.records import JobRecord
from lsx.claims.replication import UNSTABLE, combine, evaluate_replicated
from lsx.claims.units import Unit, check_sets, next_block, parse_unit, parse_units
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

R, N, I = REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE  # noqa: E741 - the verdicts' initials, for the tables below


@pytest.mark.parametrize(
    "d, r, headline",
    [
        (R, R, R),
        (N, N, N),
        (I, I, I),
        (R, N, UNSTABLE),
        (N, R, UNSTABLE),
        (R, I, I),
        (I, R, I),
        (N, I, I),
        (I, N, I),
    ],
)
def test_headline_needs_both_sets(d, r, headline):
    verdict, reason = combine({"discovery": d, "replication": r})
    assert verdict == headline
    if d != r:
        assert f"discovery {d}" in reason and f"replication {r}" in reason


def _jobs(values: list[float], tmp: Path, first_seed: int) -> list[JobRecord]:
    return [
        JobRecord(config={"seed": first_seed + k}, metrics={"y": v}, seed=first_seed + k, job_dir=tmp / f"j{first_seed + k}")
        for k, v in enumerate(values)
    ]


CLAIM = {"id": "c", "statement": "y > 0", "statistic": "mean", "args": {"y": "metrics.y"}, "decision": {"greater": 0.0}}


def test_sets_that_disagree_are_unstable_and_never_pooled(tmp_path):
    up = [1.0, 1.2, 0.9, 1.1, 1.05, 0.95]
    down = [-v for v in up]
    sets = {"discovery": _jobs(up, tmp_path, 0), "replication": _jobs(down, tmp_path, 6)}
    headline, reason, res = evaluate_replicated(CLAIM, sets)
    assert (res["discovery"].verdict, res["replication"].verdict, headline) == (R, N, UNSTABLE)
    assert res["discovery"].estimate.n == res["replication"].estimate.n == 6  # each set alone, not 12 pooled
    assert "the sets disagree" in reason
    headline, _, res = evaluate_replicated(CLAIM, {"discovery": _jobs(up, tmp_path, 0), "replication": _jobs(up, tmp_path, 6)})
    assert headline == R and res["replication"].estimate.value == pytest.approx(sum(up) / 6)


def test_a_set_without_jobs_is_inconclusive_and_so_is_the_headline(tmp_path):
    headline, _, res = evaluate_replicated(CLAIM, {"discovery": _jobs([1.0] * 6, tmp_path, 0), "replication": []})
    assert res["replication"].verdict == INCONCLUSIVE and headline == INCONCLUSIVE


def test_a_claim_untestable_at_the_scale_is_never_not_reproduced(tmp_path):
    from lsx.claims.verdicts import NOT_TESTABLE, check_claims

    down = [-1.0, -1.2, -0.9, -1.1, -1.05, -0.95]
    sets = {"discovery": _jobs(down, tmp_path, 0), "replication": _jobs(down, tmp_path, 6)}
    claim = dict(CLAIM, untestable={"cpu": "the effect needs nets 100x wider than the cpu scale trains"})
    headline, reason, res = evaluate_replicated(claim, sets, scale="cpu")
    assert headline == NOT_TESTABLE and reason.startswith("the effect needs nets 100x wider")
    assert "measured anyway, not a verdict: not reproduced" in reason and res["discovery"].verdict == N  # kept, shown
    assert evaluate_replicated(claim, sets, scale="paper")[0] == N  # declared for cpu only: decided at paper scale
    for bad in ({"cpu": ""}, "cpu", {"cpu": 3}):
        with pytest.raises(ValueError, match="valid: untestable: {cpu:"):
            check_claims("p", [dict(CLAIM, untestable=bad)])


def test_units_become_disjoint_overrides():
    assert Unit().override(7) == "seed=7"
    sets = Unit("optima.seeds", 3)
    assert sets.override(0) == "optima.seeds=[0,1,2]" and sets.override(5) == "optima.seeds=[15,16,17]"
    assert not set(sets.value(1)) & set(sets.value(2))
    assert "disjoint set of 3" in sets.describe() and Unit().describe() == "a training seed"
    assert parse_unit("p", {"key": "analysis.seeds", "size": 2}) == Unit("analysis.seeds", 2)
    with pytest.raises(ValueError, match="reproduce.unit.size must be a positive integer"):
        parse_unit("p", {"key": "seed", "size": 0})
    with pytest.raises(ValueError, match="unknown keys \\['sise'\\]"):
        parse_unit("p", {"key": "seed", "sise": 2})


def test_seed_lists_parse_or_are_refused_with_one_line():
    assert parse_units("10-15") == [10, 11, 12, 13, 14, 15]
    assert parse_units("[3,1,2]") == parse_units("3,1,2") == parse_units([3, 1, 2]) == [3, 1, 2]
    assert next_block([10, 11, 12, 13, 14, 15]) == [16, 17, 18, 19, 20, 21]
    for bad, msg in (
        ("a-b", "not a list of unit indices"),
        ("5-1", "low to high"),
        ("[]", "non-negative unit indices"),
        ("[-1,2]", "non-negative"),
        ("1,1", "twice"),
    ):
        with pytest.raises(ValueError, match=msg) as err:
            parse_units(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"share unit\(s\) \[5\]"):
        check_sets("x", {"discovery": list(range(6)), "replication": list(range(5, 11))}, 6)
    with pytest.raises(ValueError, match=r"5 replication unit\(s\).*at least 6"):
        check_sets("x", {"discovery": list(range(6)), "replication": list(range(6, 11))}, 6)


def test_a_stride_keeps_units_that_train_two_seeds_disjoint():
    # curve_taxonomy trains seed and seed+1: with stride 2, unit u owns 2u and 2u+1 and shares no model with u+1
    unit = parse_unit("xu", {"key": "seed", "stride": 2})
    owned = [{unit.value(u), unit.value(u) + 1} for u in range(8)]
    assert unit.override(3) == "seed=6" and all(not a & b for i, a in enumerate(owned) for b in owned[i + 1 :])
    with pytest.raises(ValueError, match="not both"):
        parse_unit("xu", {"key": "optima.seeds", "size": 3, "stride": 2})
