"""Verdicts: computed from a statistic's 95% interval and the claim's decision rule, never written.

``{greater: b}``: reproduced if lo > b, not reproduced if hi <= b, else inconclusive.
``{less: b}`` mirrors it. ``{between: [a, b]}``: reproduced if a <= lo and hi <= b, not reproduced
if hi < a or lo > b, else inconclusive. Fewer than ``MIN_UNITS`` (6) independent units, a missing metric, data that cannot
support the statistic, or any failed job make the verdict ``inconclusive`` with the reason; failed
jobs are listed and never averaged.

Matched training (:func:`_compare_training`): the compared models' train losses *as the analysis
measured them* (results.json ``training[].analysis_train_loss``: the centre in the analysis's BN mode
on its examples) must agree within the preset's ``train_loss_ratio``, and every compared run with a
``training.target_train_loss`` must have reached it. Otherwise the verdict is ``inconclusive`` with a
reason starting ``unmatched training:``, unless the claim declares ``matching: {waive: "<why the
mismatch does not matter>"}``; then the verdict stands and the waiver is reported beside it.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .inference import MIN_UNITS
from .records import JobRecord, MissingKey
from .statistics import Estimate, InsufficientData, get_statistic, same_value

log = logging.getLogger("lsx.claims")

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
CLAIM_KEYS = (
    "id",
    "source",
    "statement",
    "paper_value",
    "paper_estimate",
    "statistic",
    "args",
    "decision",
    "note",
    "matching",
    "untestable",
)
# a claim whose regime a scale cannot reach (declared with the reason, before the run): never "not reproduced" there
NOT_TESTABLE = "not testable at this scale"
MATCHING_KEYS = ("waive",)
PAPER_ESTIMATE_FORMS = (
    'valid: paper_estimate: {value: x, from: "<where the paper gives it>"}, {range: [a, b], from: "..."} '
    "(the paper's own number(s) on the statistic's scale), or {none: \"<why the paper gives no number on this scale>\"} "
    '(with threshold: "<why the bound reads the paper\'s words>" when the bound is not the no-effect value)'
)
REQUIRED_KEYS = ("id", "statement", "statistic", "decision")


@dataclass
class FailedJob:
    """A grid point whose job raised: listed in the report, excluded from every statistic."""

    overrides: list[str]
    reason: str
    seed: int | None = None


@dataclass
class Matching:
    """Whether the compared models were trained to a matched point (see the module docstring)."""

    flag: bool = False  # unmatched: spread above the preset's factor, or a compared run missed its target
    reason: str = ""  # what is unmatched: which runs, the factor, the missed targets ("" when matched)
    measure: str | None = None  # which loss was compared (analysis_train_loss, or the summary train_loss fallback)
    spread: float | None = None  # max/min of that loss over the compared runs
    missed_target: list[dict[str, Any]] = field(default_factory=list)  # compared runs that stopped above their target
    waived: str | None = None  # the claim's ``matching.waive`` text, when a flag was waived

    def to_dict(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "reason": self.reason,
            "measure": self.measure,
            "spread": self.spread,
            "missed_target": list(self.missed_target),
            "waived": self.waived,
        }


@dataclass
class ClaimResult:
    claim: dict[str, Any]
    verdict: str
    reason: str
    estimate: Estimate | None
    failed: list[FailedJob] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)  # each compared model's train loss / test acc
    train_loss_spread: float | None = None  # max/min compared train loss (matching.measure) over the compared models
    train_loss_flag: bool = False  # that spread exceeds the preset's train_loss_ratio
    n_jobs: int = 0
    matching: Matching = field(default_factory=Matching)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: self.claim.get(k) for k in CLAIM_KEYS if k != "matching"},
            "verdict": self.verdict,
            "reason": self.reason,
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "failed": [vars(f) for f in self.failed],
            "compared": self.compared,
            "train_loss_spread": self.train_loss_spread,
            "train_loss_flag": self.train_loss_flag,
            "n_jobs": self.n_jobs,
            "matching": self.matching.to_dict(),
        }


# ----------------------------------------------------------------------------- decision rules
def check_decision(decision: Any) -> tuple[str, tuple[float, ...]]:
    """``decision`` → (rule, bounds); ValueError naming the valid forms otherwise."""
    valid = "valid: {greater: b}, {less: b}, {between: [a, b]}"
    if not isinstance(decision, dict) or len(decision) != 1:
        raise ValueError(f"decision {decision!r} must have exactly one rule; {valid}")
    ((rule, bound),) = decision.items()
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


def decide_interval(lo: float, hi: float, decision: Mapping[str, Any]) -> str:
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


def decide(est: Estimate, decision: Mapping[str, Any]) -> tuple[str, str]:
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
        text = {
            REPRODUCED: f"{ci} lies {side} {b:g}",
            NOT_REPRODUCED: f"{ci} lies {other} {b:g}",
            INCONCLUSIVE: f"{ci} crosses {b:g}",
        }
    else:
        a, b = bounds
        text = {
            REPRODUCED: f"{ci} lies within [{a:g}, {b:g}]",
            NOT_REPRODUCED: f"{ci} lies outside [{a:g}, {b:g}]",
            INCONCLUSIVE: f"{ci} overlaps a bound of [{a:g}, {b:g}]",
        }
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
        try:
            waiver(c)
            untestable_reason(c, None)
            check_decision(c["decision"])
            check_paper_estimate(c)
        except ValueError as err:
            raise ValueError(f"{where} ({c['id']}): {err}") from None
        check_args(c)
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


def waiver(claim: dict[str, Any]) -> str | None:
    """The claim's ``matching: {waive: "<why an unmatched training does not matter here>"}`` text, or None."""
    m = claim.get("matching")
    if m is None:
        return None
    valid = 'valid: matching: {waive: "<why the mismatch in training does not matter for this claim>"}'
    if not isinstance(m, dict) or set(m) - set(MATCHING_KEYS):
        raise ValueError(f"matching {m!r} is malformed; {valid}")
    text = m.get("waive")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"matching.waive must be a non-empty reason, got {text!r}; {valid}")
    return text.strip()


def paper_estimate(claim: Mapping[str, Any]) -> tuple[float, float] | None:
    """The paper's own number on the claim's statistic scale as (lo, hi) (a single value: lo == hi); None
    when the claim has no ``paper_estimate`` or declares ``{none: why}``. ValueError when malformed."""
    spec = claim.get("paper_estimate")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError(f"paper_estimate {spec!r} is malformed; {PAPER_ESTIMATE_FORMS}")
    if "none" in spec and set(spec) <= {"none", "threshold"}:
        for k in spec:
            if not isinstance(spec[k], str) or not spec[k].strip():
                raise ValueError(f"paper_estimate.{k} must be a non-empty reason, got {spec[k]!r}; {PAPER_ESTIMATE_FORMS}")
        return None
    kind = set(spec) - {"from"}
    text = spec.get("from")
    if len(kind) != 1 or not kind <= {"value", "range"} or not isinstance(text, str) or not text.strip():
        raise ValueError(f"paper_estimate {spec!r} is malformed; {PAPER_ESTIMATE_FORMS}")
    try:
        if "value" in spec:
            lo = hi = float(spec["value"])
        else:
            lo, hi = (float(v) for v in spec["range"])
    except (TypeError, ValueError):
        raise ValueError(f"paper_estimate {spec!r} is malformed; {PAPER_ESTIMATE_FORMS}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"paper_estimate {spec!r} needs finite numbers with a <= b; {PAPER_ESTIMATE_FORMS}")
    return lo, hi


def check_paper_estimate(claim: Mapping[str, Any]) -> None:
    """A claim's decision rule must accept the paper's own number(s): a rule the paper itself would fail
    tests something else. Each end of a range is decided as a point (the rules are intervals, so the
    whole range is then accepted). ValueError naming the rejected number otherwise."""
    est = paper_estimate(claim)
    if est is None:
        return
    for v in sorted(set(est)):
        verdict = decide_interval(v, v, claim["decision"])
        if verdict != REPRODUCED:
            raise ValueError(
                f"decision {claim['decision']} gives {verdict!r} on the paper's own number {v:g} "
                f"(paper_estimate {claim['paper_estimate']}): the rule must accept what the paper reports"
            )


def untestable_reason(claim: dict[str, Any], scale: str | None) -> str | None:
    """The claim's ``untestable: {<scale>: "<why this scale cannot reach the paper's regime>"}`` reason at
    ``scale`` (None: only validate the mapping)."""
    spec = claim.get("untestable")
    if spec is None:
        return None
    valid = 'valid: untestable: {cpu: "<why the cpu scale cannot reach the regime the claim is about>"}'
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"untestable {spec!r} is malformed; {valid}")
    for k, why in spec.items():
        if not isinstance(why, str) or not why.strip():
            raise ValueError(f"untestable.{k} must be a non-empty reason, got {why!r}; {valid}")
    return None if scale is None or spec.get(scale) is None else str(spec[scale]).strip()


def evaluate_claim(
    claim: dict[str, Any],
    jobs: Sequence[JobRecord],
    failed: Sequence[FailedJob] = (),
    train_loss_ratio: float | None = 3.0,
) -> ClaimResult:
    """The claim's statistic over the finished jobs, its verdict, and whether the compared models' training
    was matched (an unmatched comparison is inconclusive unless the claim waives it, saying why)."""
    args = dict(claim.get("args") or {})
    failed = list(failed)
    check_args(claim)
    check_decision(claim["decision"])
    waive = waiver(claim)
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
    m = res.matching
    if m.flag and waive:
        m.waived = waive
        res.reason += f"; training unmatched ({m.reason}), waived by the claim: {waive}"
    elif m.flag:
        res.reason = f"unmatched training: {m.reason}. Without this check: {res.verdict} ({res.reason})"
        res.verdict = INCONCLUSIVE
    return res


def _compare_training(res: ClaimResult, jobs: Sequence[JobRecord], args: dict[str, Any], ratio: float | None) -> None:
    """One row per distinct trained optimum behind the compared jobs (group, seed, the loss the analysis
    measured there, summary train loss, test accuracy, how training stopped, its target), and
    ``res.matching``: flagged when the compared losses differ by more than ``ratio`` or a run missed its
    target. The loss compared is ``analysis_train_loss``; a job whose results.json lacks it (computed
    before it was recorded) falls back to its summary ``train_loss`` (eval mode: stale BN statistics
    can inflate it), and ``matching.measure`` says so."""
    key = args.get("x") or args.get("key")
    jobs = compared_jobs(jobs, args)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, Any]] = set()
    fallback: set[str] = set()
    for j in jobs:
        group = j.get(key, None) if key else None
        measured = any(t.get("analysis_train_loss") is not None for t in j.training)
        for t in j.training:
            ident = (str(group), t.get("run_dir"))
            if ident in seen:
                continue
            seen.add(ident)
            measure = "analysis_train_loss" if measured else "train_loss"
            if not measured:
                fallback.add(str(j.job_dir))
            rows.append(
                {
                    "group": group,
                    "group_key": key,
                    "seed": t.get("seed"),
                    "train_loss": t.get("train_loss"),
                    **{
                        k: t.get(k)
                        for k in (
                            "analysis_train_loss",
                            "analysis_bn",
                            "analysis_epoch",
                            "target_train_loss",
                            "reached_target",
                            "stop_train_loss",
                        )
                    },
                    "compared_loss": t.get(measure),
                    "measure": measure if t.get(measure) is not None else None,
                    "test_acc": t.get("test_acc"),
                    "epochs_run": t.get("epochs_run"),
                    "steps": t.get("steps"),
                    "stopped_by": t.get("stopped_by"),
                    "job_dir": str(j.job_dir),
                }
            )
    m = res.matching
    m.measure = _measure_text(rows, len(fallback))
    parts = []
    usable = [r for r in rows if _finite(r["compared_loss"]) and r["compared_loss"] > 0]
    if len(usable) >= 2:
        lo_row = min(usable, key=lambda r: r["compared_loss"])
        hi_row = max(usable, key=lambda r: r["compared_loss"])
        lo, hi = lo_row["compared_loss"], hi_row["compared_loss"]
        spread = float(hi / lo)
        m.spread = res.train_loss_spread = spread
        if ratio:
            for r in usable:
                r["flag"] = bool(max(r["compared_loss"] / lo, hi / r["compared_loss"]) > float(ratio))
            res.train_loss_flag = spread > float(ratio)
            if res.train_loss_flag:
                parts.append(
                    f"train losses differ {spread:.3g}x (> the preset's {float(ratio):g}; {m.measure}): "
                    f"highest {_run_text(hi_row)} {hi:.3g}, lowest {_run_text(lo_row)} {lo:.3g}"
                )
    missed = [r for r in rows if r["reached_target"] is False]
    if missed:
        m.missed_target = [
            {
                k: r.get(k)
                for k in (
                    "group_key",
                    "group",
                    "seed",
                    "target_train_loss",
                    "stop_train_loss",
                    "epochs_run",
                    "stopped_by",
                    "job_dir",
                )
            }
            for r in missed
        ]
        shown = "; ".join(
            f"{_run_text(r)} at {_loss_text(r.get('stop_train_loss'))} > {r['target_train_loss']:g} after "
            f"{r.get('epochs_run')} epochs (stopped by {r.get('stopped_by')})"
            for r in missed[:4]
        )
        more = f"; and {len(missed) - 4} more" if len(missed) > 4 else ""
        parts.append(f"{len(missed)} of {len(rows)} compared run(s) missed training.target_train_loss: {shown}{more}")
    m.flag = bool(parts)
    m.reason = "; ".join(parts)
    res.compared = rows


def compared_jobs(jobs: Sequence[JobRecord], args: dict[str, Any]) -> list[JobRecord]:
    """The jobs a claim's statistic compares, by the statistics' shared argument conventions: ``key`` with
    groups ``a``/``b``, ``where`` (fixed config values), ``x`` within [``x_min``, ``x_max``]. Exclusions a
    statistic makes from results (e.g. ``max_train_loss``: untrained nets) do not apply: a net left
    untrained is exactly what the matched-training check reports."""
    out = list(jobs)
    key = args.get("key")
    if key and "a" in args and "b" in args:
        out = [j for j in out if any(same_value(j.get(key, None), args[v]) for v in ("a", "b"))]
    if isinstance(args.get("where"), dict):
        out = [j for j in out if all(same_value(j.get(k, None), v) for k, v in args["where"].items())]
    x = args.get("x")
    if x and (args.get("x_min") is not None or args.get("x_max") is not None):
        lo = -math.inf if args.get("x_min") is None else float(args["x_min"])
        hi = math.inf if args.get("x_max") is None else float(args["x_max"])
        out = [j for j in out if _kept_by_range(_number(j.get(x, None)), lo, hi)]
    return out


def _kept_by_range(v: float | None, lo: float, hi: float) -> bool:
    """Kept by an ``x`` range: a value with no finite number (the statistic reports it) or one within [lo, hi]."""
    return v is None or not math.isfinite(v) or lo <= v <= hi


def _number(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _measure_text(rows: list[dict[str, Any]], fallback_jobs: int) -> str | None:
    measures = {r["measure"] for r in rows if r["measure"]}
    if not measures:
        return None
    if measures == {"train_loss"}:
        return "train_loss (summary, eval mode: the jobs predate analysis_train_loss)"
    bns = sorted({str(r["analysis_bn"]) for r in rows if r["measure"] == "analysis_train_loss"})
    text = f"analysis_train_loss (bn: {', '.join(bns)})"
    if "train_loss" in measures:
        text += f"; summary train_loss for the runs of {fallback_jobs} job(s) that predate it"
    unmeasured = [r for r in rows if not _finite(r["compared_loss"])]  # e.g. a partner optimum a job only uses
    if unmeasured:
        seeds = sorted({r["seed"] for r in unmeasured}, key=lambda s: (s is None, s if isinstance(s, int) else 0))
        shown = ", ".join(map(str, seeds[:8])) + (", ..." if len(seeds) > 8 else "")
        text += f"; {len(unmeasured)} optima the analysis did not measure (seeds {shown}) are not compared"
    return text


def _run_text(r: dict[str, Any]) -> str:
    group = f" [{r['group_key']}={r['group']}]" if r.get("group_key") else ""
    return f"seed {r.get('seed')}{group}"


def _loss_text(v: Any) -> str:
    return f"train loss {float(v):.3g}" if _finite(v) else "train loss ?"
