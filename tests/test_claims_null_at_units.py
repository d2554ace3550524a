"""Every verdict of the published report rests on a rule whose false-positive rate is known at the number
of units that verdict used: for each (interval family, unit count, rule) the committed report holds, a null
whose per-unit values sit on the rule's bound is simulated through the same interval and rule.

The statistics' own nulls (per-unit values from simulated job records) are in test_claims_calibration.py and
each family's test file; this file ties them to the report: a verdict on another unit count or another
interval than those files simulate fails here. Per-unit values are independent units (a seed, a disjoint
set of optima); the t interval's null is normal, the sign interval's is exact for any continuous null.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lsx.claims.inference import MIN_UNITS, null_rates, unit_interval
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

REPORT = Path(__file__).resolve().parents[1] / "docs" / "reproduce" / "report.json"
MAX_RATE = 0.05  # each interval is a 95% one: 2.5% per side, measured within 1000 trials


def _family(method: str) -> str:
    if "sign-test" in method:
        return "sign"
    if "Student-t" in method:
        return "t"
    raise AssertionError(f"a published verdict rests on an interval this file does not simulate: {method!r}")


def _published_sets() -> list[tuple[str, str, str, dict, dict, str]]:
    """(preset, claim, set, estimate, decision, set verdict) for every set of every claim with an estimate."""
    out = []
    for section in json.loads(REPORT.read_text())["presets"]:
        for c in section["claims"]:
            for name, s in (c.get("sets") or {}).items():
                if s.get("estimate") and s["estimate"].get("n") is not None:
                    out.append((section["preset"], c["id"], name, s["estimate"], c["decision"], s["verdict"]))
    return out


def _combinations() -> list[tuple[str, int, str]]:
    """Distinct (interval family, unit count, rule as JSON) over the published verdicts with ≥ MIN_UNITS units."""
    seen = {
        (_family(est["method"]), int(est["n"]), json.dumps(decision, sort_keys=True))
        for _, _, _, est, decision, _ in _published_sets()
        if est["n"] >= MIN_UNITS
    }
    return sorted(seen)


def test_the_report_has_verdicts_to_check():
    combos = _combinations()
    assert len(combos) >= 10 and {f for f, _, _ in combos} == {"sign", "t"}
    assert {n for _, n, _ in combos} >= {6, 8}


def test_a_verdict_below_min_units_is_inconclusive():
    few = [(p, c, s, v) for p, c, s, est, _, v in _published_sets() if est["n"] < MIN_UNITS]
    assert all(v == INCONCLUSIVE for *_, v in few), few


@pytest.mark.parametrize("family,n,rule", _combinations())
def test_null_at_the_bound_at_the_units_each_published_verdict_used(family, n, rule):
    decision = json.loads(rule)
    ((kind, bound),) = decision.items()
    bounds = bound if kind == "between" else [bound]
    for b in map(float, bounds):  # the least favourable null: the true centre exactly on a bound

        def draw(rng: np.random.Generator, b: float = b) -> tuple[float, float]:
            _, lo, hi = unit_interval(b + rng.normal(0.0, 1.0, n), family)
            return lo, hi

        rates = null_rates(draw, decision, trials=1000, seed=n)
        assert rates[REPRODUCED] <= MAX_RATE, (family, n, decision, b, rates)
        assert rates[NOT_REPRODUCED] <= MAX_RATE, (family, n, decision, b, rates)


def test_the_check_catches_an_interval_too_narrow_for_its_units():
    """The same simulation flags a rule that would decide on a sample's range at 4 units (1 in 8 false)."""

    def draw(rng: np.random.Generator) -> tuple[float, float]:
        v = rng.normal(0.0, 1.0, 4)
        return float(v.min()), float(v.max())

    assert null_rates(draw, {"greater": 0.0}, trials=1000, seed=0)[REPRODUCED] > MAX_RATE
