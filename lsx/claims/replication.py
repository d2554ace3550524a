"""Replication: every claim is decided on two disjoint unit sets, and the headline needs both to agree.

Why: with a handful of units one lucky set can clear a bound. A claim's headline verdict is
``reproduced`` / ``not reproduced`` only when the discovery and the replication set say so alike;
``unstable`` when one says reproduced and the other not reproduced; otherwise the weaker verdict
(``inconclusive``). Both sets' results are kept, so the report can show why. A claim that declares its
regime out of reach of the run's scale (``untestable: {cpu: reason}``) is ``not testable at this scale``
whatever the sets say: the measured verdicts are kept beside the reason, never counted as "not reproduced".
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .records import JobRecord
from .units import SETS
from .verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    ClaimResult,
    FailedJob,
    evaluate_claim,
    untestable_reason,
)

UNSTABLE = "unstable"
HEADLINES = (REPRODUCED, NOT_REPRODUCED, UNSTABLE, INCONCLUSIVE, NOT_TESTABLE)


def combine(verdicts: Mapping[str, str]) -> tuple[str, str]:
    """(headline, reason) from the per-set verdicts ``{discovery: v, replication: w}``."""
    d, r = verdicts["discovery"], verdicts["replication"]
    if d == r:
        return d, f"discovery and replication sets both: {d}"
    if {d, r} == {REPRODUCED, NOT_REPRODUCED}:
        return UNSTABLE, f"the sets disagree: discovery {d}, replication {r}"
    return INCONCLUSIVE, f"discovery {d}, replication {r}: a headline needs both sets to agree"


def evaluate_replicated(
    claim: dict[str, Any],
    jobs: Mapping[str, Sequence[JobRecord]],
    failed: Mapping[str, Sequence[FailedJob]] | None = None,
    train_loss_ratio: float | None = 3.0,
    scale: str | None = None,
) -> tuple[str, str, dict[str, ClaimResult]]:
    """Evaluate ``claim`` on each set's own jobs (never pooled); returns (headline, reason, per-set results).
    At a ``scale`` the claim declares untestable the headline is ``not testable at this scale``."""
    failed = failed or {}
    results = {
        name: evaluate_claim(claim, list(jobs.get(name) or ()), list(failed.get(name) or ()), train_loss_ratio) for name in SETS
    }
    headline, reason = combine({name: res.verdict for name, res in results.items()})
    why = untestable_reason(claim, scale)
    if why:
        headline, reason = NOT_TESTABLE, f"{why} (measured anyway, not a verdict: {headline}; {reason})"
    return headline, reason, results
