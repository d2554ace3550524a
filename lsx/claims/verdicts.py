"""Verdicts: computed from a statistic's 95% interval and the claim's decision rule, never written.

``{greater: b}``: reproduced if lo > b, not reproduced if hi <= b, else inconclusive.
``{less: b}`` mirrors it. ``{between: [a, b]}``: reproduced if a <= lo and hi <= b, not reproduced
if hi < a or lo > b, else inconclusive. Fewer than ``MIN_UNITS`` (6) independent units, a missing metric, data that cannot
support the statistic, or any failed job make the verdict ``inconclusive`` with the reason; failed
jobs are listed and never averaged.
"""
from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .inference import MIN_UNITS
from .records import JobRecord, MissingKey
from .statistics import Estimate, InsufficientData, get_statistic, same_value

log = logging.getLogger("lsx.claims")

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
CLAIM_KEYS = ("id", "source", "statement", "paper_value", "statistic", "args", "decision", "note")
REQUIRED_KEYS = ("id", "statement", "statistic", "decision")


@dataclass
class FailedJob:
    """A grid point whose job raised: listed in the report, excluded from every statistic."""

    overrides: list[str]
    reason: str
    seed: int | None = None


@dataclass
class ClaimResult:
    claim: dict[str, Any]
    verdict: str
    reason: str
    estimate: Estimate | None
    failed: list[FailedJob] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)  # each compared model's train loss / test acc
    train_loss_spread: float | None = None  # max/min final train loss over the compared models
    train_loss_flag: bool = False
    n_jobs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: self.claim.get(k) for k in CLAIM_KEYS},
            "verdict": self.verdict, "reason": self.reason,
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "failed": [vars(f) for f in self.failed], "compared": self.compared,
            "train_loss_spread": self.train_loss_spread, "train_loss_flag": self.train_loss_flag, "n_jobs": self.n_jobs,
        }


# ----------------------------------------------------------------------------- decision rules
def check_decision(decision: Any) -> tuple[str, tuple[float, ...]]:
    """``decision`` → (rule, bounds); ValueError naming the valid forms otherwise."""
    valid = "valid: {greater: b}, {less: b}, {between: [a, b]}"
    if not isinstance(decision, dict) or len(decision) != 1:
        raise ValueError(f"decision {decision!r} must have exactly one rule; {valid}")
    (rule, bound), = decision.items()
    try:
        if rule in ("greater", "less"):
            return rule, (float(bound),)
        if rule == "between":
            a, b = (float(v) for v in bound)
            if a > b:
                raise ValueError
            return rule, (a, b)
    except (TypeError, ValueError):
        pass
    raise ValueError(f"decision {decision!r} is malformed; {valid} (with a <= b)")


def decide_interval(lo: float, hi: float, decision: dict[str, Any]) -> str:
    """The verdict of a 95% interval [lo, hi] under a decision rule (NaN bounds: inconclusive)."""
    rule, bounds = check_decision(decision)
    if not (_finite(lo) and _finite(hi)):
        return INCONCLUSIVE
    if rule == "greater":
        return REPRODUCED if lo > bounds[0] else NOT_REPRODUCED if hi <= bounds[0] else INCONCLUSIVE
    if rule == "less":
        return REPRODUCED if hi < bounds[0] else NOT_REPRODUCED if lo >= bounds[0] else INCONCLUSIVE
    a, b = bounds
    return REPRODUCED if a <= lo and hi <= b else NOT_REPRODUCED if hi < a or lo > b else INCONCLUSIVE


def decide(est: Estimate, decision: dict[str, Any]) -> tuple[str, str]:
    """(verdict, reason) for an estimate under a decision rule.

    Below ``MIN_UNITS`` independent units the verdict is inconclusive whatever the interval says:
    the intervals' error rates are simulated from 6 units up (docs/statistics.md); below that no
    95% sign interval exists, and 3 units of one sign (1 time in 4 under a symmetric null) give
    degenerate intervals such as [min, max] that exclude the bound."""
    rule, bounds = check_decision(decision)
    lo, hi = est.lo, est.hi
    if est.n < MIN_UNITS:
        return INCONCLUSIVE, f"n = {est.n} units; a calibrated 95% decision needs ≥ {MIN_UNITS} (add seeds)"
    if not (_finite(lo) and _finite(hi) and _finite(est.value)):
        return INCONCLUSIVE, "the statistic has no finite interval (see its method/details)"
    verdict = decide_interval(lo, hi, decision)
    ci = f"95% interval [{lo:.4g}, {hi:.4g}]"
    if rule in ("greater", "less"):
        (b,) = bounds
        side = "above" if rule == "greater" else "below"
        other = "at or below" if rule == "greater" else "at or above"
        text = {REPRODUCED: f"{ci} lies {side} {b:g}", NOT_REPRODUCED: f"{ci} lies {other} {b:g}",
                INCONCLUSIVE: f"{ci} crosses {b:g}"}
    else:
        a, b = bounds
        text = {REPRODUCED: f"{ci} lies within [{a:g}, {b:g}]", NOT_REPRODUCED: f"{ci} lies outside [{a:g}, {b:g}]",
                INCONCLUSIVE: f"{ci} overlaps a bound of [{a:g}, {b:g}]"}
    return verdict, text[verdict]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


# ----------------------------------------------------------------------------- claims of a preset
def check_claims(preset: str, claims: Any) -> list[dict[str, Any]]:
    """Validate a preset's ``claims`` list (bad input → one ValueError naming the preset and claim)."""
    if not claims:
        raise ValueError(f"preset {preset!r} declares no claims (add a `claims:` list; see docs/reproduction.md)")
    if not isinstance(claims, list):
        raise ValueError(f"preset {preset!r}: `claims` must be a list, got {type(claims).__name__}")
    seen: set[str] = set()
    out = []
    for i, c in enumerate(claims):
        where = f"preset {preset!r} claim #{i}"
        if not isinstance(c, dict):
            raise ValueError(f"{where} must be a mapping with keys {', '.join(REQUIRED_KEYS)}")
        missing = [k for k in REQUIRED_KEYS if not c.get(k)]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(missing)} (required: {', '.join(REQUIRED_KEYS)})")
        unknown = sorted(set(c) - set(CLAIM_KEYS))
        if unknown:
            raise ValueError(f"{where} ({c['id']}): unknown keys {unknown}; valid: {', '.join(CLAIM_KEYS)}")
        if c["id"] in seen:
            raise ValueError(f"preset {preset!r}: claim id {c['id']!r} is used twice")
        seen.add(c["id"])
        if c.get("args") is not None and not isinstance(c["args"], dict):
            raise ValueError(f"{where} ({c['id']}): args must be a mapping")
        check_args(c)
        try:
            check_decision(c["decision"])
        except ValueError as err:
            raise ValueError(f"{where} ({c['id']}): {err}") from None
        out.append(dict(c, args=dict(c.get("args") or {})))
    return out


def check_args(claim: dict[str, Any]) -> None:
    """The claim's statistic exists and accepts its args (else one ValueError before anything runs)."""
    fn = get_statistic(str(claim["statistic"]))
    args = dict(claim.get("args") or {})
    try:
        inspect.signature(fn).bind([], **args)
    except TypeError as err:
        raise ValueError(f"claim {claim.get('id')!r}: statistic {claim['statistic']!r} rejects args {args}: {err}") from None


def evaluate_claim(
    claim: dict[str, Any], jobs: Sequence[JobRecord], failed: Sequence[FailedJob] = (), train_loss_ratio: float | None = 3.0,
) -> ClaimResult:
    """The claim's statistic over the finished jobs, its verdict, and the compared models' training."""
    args = dict(claim.get("args") or {})
    failed = list(failed)
    check_args(claim)
    check_decision(claim["decision"])
    fn = get_statistic(str(claim["statistic"]))
    est: Estimate | None = None
    try:
        if not jobs:
            raise InsufficientData("no finished job")
        est = fn(list(jobs), **args)
        verdict, reason = decide(est, claim["decision"])
    except (MissingKey, InsufficientData) as err:
        verdict, reason = INCONCLUSIVE, str(err)
    except Exception as err:  # a bug in one statistic must not cost the other claims their verdicts
        log.warning("statistic %s failed on claim %s: %s", claim["statistic"], claim.get("id"), err)
        est, verdict, reason = None, INCONCLUSIVE, f"statistic {claim['statistic']!r} failed: {type(err).__name__}: {err}"
    if failed:
        verdict = INCONCLUSIVE
        reason = f"{len(failed)} job(s) failed (listed, excluded); over the {len(jobs)} that finished: {reason}"
    res = ClaimResult(claim, verdict, reason, est, failed, n_jobs=len(jobs))
    _compare_training(res, jobs, args, train_loss_ratio)
    return res


def _compare_training(res: ClaimResult, jobs: Sequence[JobRecord], args: dict[str, Any], ratio: float | None) -> None:
    """One row per distinct trained optimum behind the compared jobs: group, seed, final train loss,
    test accuracy, how training stopped; flag when final train losses differ by more than ``ratio``."""
    key = args.get("x") or args.get("key")
    if "key" in args and "a" in args and "b" in args:
        jobs = [j for j in jobs if any(same_value(j.get(key, None), args[v]) for v in ("a", "b"))]
    rows, seen = [], set()
    for j in jobs:
        group = j.get(key, None) if key else None
        for t in j.training:
            ident = (str(group), t.get("run_dir"))
            if ident in seen:
                continue
            seen.add(ident)
            rows.append({"group": group, "group_key": key, "seed": t.get("seed"), "train_loss": t.get("train_loss"),
                         "test_acc": t.get("test_acc"), "epochs_run": t.get("epochs_run"), "steps": t.get("steps"),
                         "stopped_by": t.get("stopped_by"), "job_dir": str(j.job_dir)})
    losses = [r["train_loss"] for r in rows if _finite(r["train_loss"]) and r["train_loss"] > 0]
    if len(losses) >= 2:
        spread = max(losses) / min(losses)
        res.train_loss_spread = spread
        if ratio:
            res.train_loss_flag = spread > float(ratio)
            lo, hi = min(losses), max(losses)
            for r in rows:
                tl = r["train_loss"]
                r["flag"] = bool(_finite(tl) and tl > 0 and max(tl / lo, hi / tl) > float(ratio))
            if res.train_loss_flag:
                res.reason += f"; note: compared models' final train losses differ by {spread:.1f}x (> {float(ratio):g}): unmatched training"
    res.compared = rows
