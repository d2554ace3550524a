"""Every shipped claim's rule accepts the paper's own number and can fail.

Each claim states ``paper_estimate``: what the paper itself reports, on the scale of the claim's statistic
(``{value: x, from: ...}`` or ``{range: [a, b], from: ...}``), or ``{none: why}`` when the paper gives only
a direction (``{none: why, threshold: why}`` for the few bounds that read words; listed below). Loading a
preset refuses a rule that rejects its own paper_estimate (``check_paper_estimate``).
Here, over every preset's claims: each declares one; ``none`` is allowed only for a rule that asks for
exactly the stated direction (the bound is the statistic's no-effect value), so every other threshold is
justified by a number the paper gives and the rule accepts; and each rule's "not reproduced" region holds
values the statistic can take, so the claim can fail.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from lsx.claims.verdicts import check_claims, check_decision, paper_estimate

ROOT = Path(__file__).resolve().parents[1]
INF = math.inf


def _claims() -> list[tuple[str, dict[str, Any]]]:
    """Every preset's claims as written (validated per claim in the tests, so one bad claim fails its own case)."""
    out = []
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        out += [(path.stem, c) for c in doc.get("claims") or []]
    return out


CLAIMS = _claims()
IDS = [f"{p}:{c['id']}" for p, c in CLAIMS]

# The value each statistic takes when there is no effect (None: no such value; the rule's bound is a
# threshold that needs the paper's number). Rank correlations, differences, log ratios and sign flips: 0;
# ratios: 1.
_ZERO: Callable[[dict], float | None] = lambda a: 0.0  # noqa: E731
_ONE: Callable[[dict], float | None] = lambda a: 1.0  # noqa: E731
NO_EFFECT: dict[str, Callable[[dict], float | None]] = {
    "spearman": _ZERO,
    "fort_trend": _ZERO,
    "fort_list_trend": _ZERO,
    "surface_rise_spearman": _ZERO,
    "li_flatness_tracks_error": _ZERO,
    "perm_width_trend": _ZERO,
    "difference": _ZERO,
    "li_trained_difference": _ZERO,
    "li_sign_flip": _ZERO,
    "li_sign_flip_units": _ZERO,
    "fort_threshold_robust": _ZERO,
    "fort_list_at": lambda a: 0.0 if a.get("minus") else None,
    "li_paired": lambda a: 1.0 if a.get("op", "log_ratio") == "log_ratio" else 0.0,
    "ratio": _ONE,
    "surface_border_ratio": _ONE,
    "perm_barrier_ratio": _ONE,
}

# The values each statistic can take (lo, hi). Rank correlations lie in [-1, 1]; fractions of curves in
# [0, 1]; ratios of positive quantities and grid offsets are ≥ 0; the rest can take any real value.
_RHO = lambda a: (-1.0, 1.0)  # noqa: E731
SUPPORT: dict[str, Callable[[dict], tuple[float, float]]] = {
    "spearman": _RHO,
    "fort_trend": _RHO,
    "fort_list_trend": _RHO,
    "surface_rise_spearman": _RHO,
    "li_flatness_tracks_error": _RHO,
    "fort_threshold_robust": lambda a: (-1.0, 1.0) if a.get("x") else (-INF, INF),
    "xu_curve_kind": lambda a: (0.0, 1.0),
    "li_paired": lambda a: (0.0, INF) if a.get("op", "log_ratio") == "log_ratio" else (-INF, INF),
    "ratio": lambda a: (0.0, INF),
    "surface_border_ratio": lambda a: (0.0, INF),
    "perm_barrier_ratio": lambda a: (0.0, INF),
    "surface_argmin_offset": lambda a: (0.0, INF),
    "wedge_success_gap": lambda a: (-1.0, 1.0),
}


# Claims whose bound reads the paper's words where the paper gives no number and the no-effect value would
# make the rule vacuous (a top eigenvalue always sits at or above the bulk's 90% edge). Kept short on purpose.
THRESHOLD_READINGS = {"hessian_bulk_and_outliers"}


def test_every_shipped_claim_states_the_papers_number_or_why_there_is_none():
    assert len(CLAIMS) >= 80
    for preset in sorted({p for p, _ in CLAIMS}):  # what loading each preset does, the claims list as a whole
        check_claims(preset, [c for p, c in CLAIMS if p == preset])
    missing = [i for i, (_, c) in zip(IDS, CLAIMS) if c.get("paper_estimate") is None]
    assert not missing, f"claims without paper_estimate: {missing}"


@pytest.mark.parametrize("preset,claim", CLAIMS, ids=IDS)
def test_rule_accepts_the_papers_number_and_can_fail(preset, claim):
    (claim,) = check_claims(preset, [claim])  # the loader's checks: a rule that rejects the paper's number is refused
    rule, bounds = check_decision(claim["decision"])
    args = claim.get("args") or {}
    est = paper_estimate(claim)
    if est is None and "threshold" in (claim.get("paper_estimate") or {}):  # a bound read from words: said in the claim
        assert claim["id"] in THRESHOLD_READINGS, f"{preset}:{claim['id']}: a new threshold without a paper number"
    elif est is None:  # {none: why}: the rule may only ask for the direction the paper states
        no_effect = NO_EFFECT.get(claim["statistic"], lambda a: None)(args)
        assert no_effect is not None and rule in ("greater", "less") and bounds[0] == no_effect, (
            f"{preset}:{claim['id']}: rule {claim['decision']} sets a threshold other than the no-effect value "
            f"{no_effect}; give the paper's number it accepts (paper_estimate value/range)"
        )
    lo, hi = SUPPORT.get(claim["statistic"], lambda a: (-INF, INF))(args)
    can_fail = {"greater": lo <= bounds[0], "less": hi >= bounds[0]}.get(rule, lo < bounds[0] or hi > bounds[-1])
    assert can_fail, f"{preset}:{claim['id']}: rule {claim['decision']} cannot fail on the statistic's values [{lo}, {hi}]"


def test_a_rule_that_rejects_its_own_paper_number_is_refused_at_load():
    base = {"id": "c", "statement": "s", "statistic": "mean", "args": {"y": "metrics.x"}, "decision": {"less": 0.5}}
    ok = check_claims("p", [dict(base, paper_estimate={"range": [0.1, 0.4], "from": "Table 1"})])
    assert paper_estimate(ok[0]) == (0.1, 0.4)
    for bad in ({"value": 0.5, "from": "Table 1"}, {"range": [0.1, 0.6], "from": "Table 1"}):
        with pytest.raises(ValueError, match="the rule must accept what the paper reports") as err:
            check_claims("p", [dict(base, paper_estimate=bad)])
        assert "claim #0 (c)" in str(err.value) and "\n" not in str(err.value)
    assert check_claims("p", [dict(base, paper_estimate={"none": "plots only", "threshold": "'large' read as 10x"})])
    for malformed in (
        {"value": 0.1},
        {"none": " "},
        {"value": 0.1, "range": [0, 1], "from": "x"},
        {"range": [2, 1], "from": "x"},
        0.3,
    ):
        with pytest.raises(ValueError, match="paper_estimate"):
            check_claims("p", [dict(base, paper_estimate=malformed)])
