"""Calibrated intervals over independent units: what every claim's verdict rests on.

A claim's verdict compares a 95% interval with its decision bound, so the interval's coverage *at
the number of units a preset uses* is the verdict's error rate. Why not a percentile bootstrap: with
a handful of units it under-covers badly (3 units of one sign give [min, max] with probability
1/27 per single-unit resample, so a symmetric null comes out "reproduced" about 1 time in 8).

Two interval families, both computed from one value per independent unit (a training seed, or a
disjoint set of optima; what shares a trained model is one unit):

- ``sign``: the distribution-free interval for the *median* unit value from order statistics (the
  binomial sign test inverted). Exact for any continuous per-unit distribution; with fewer than 6
  units no 95% interval exists (2·0.5^5 > 5%), so the verdict is inconclusive by construction.
- ``t``: Student-t interval for the *mean* unit value; exact for normal unit values, close for
  differences and log-ratios of smooth metrics.

:func:`null_rates` simulates a claim's null at a given number of units and returns its false
"reproduced" / false "not reproduced" rates; the test suite uses it for every statistic.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np

LEVEL = 0.95
MIN_UNITS = 6  # the fewest independent units a CPU-scale claim rests on (DESIGN: claims and evidence)
TESTS = ("sign", "t")


def finite_units(per_unit: Mapping[Any, float]) -> dict[Any, float]:
    """The units whose value is finite (a unit whose statistic is undefined is dropped, and counted)."""
    return {u: float(v) for u, v in per_unit.items() if v is not None and math.isfinite(float(v))}


@lru_cache(maxsize=None)
def sign_rank(n: int, level: float = LEVEL) -> int:
    """The largest k with P(Bin(n, ½) ≤ k−1) ≤ (1−level)/2, 0 when none (n ≤ 5 at 95%)."""
    from scipy.stats import binom

    alpha = (1.0 - level) / 2.0
    k = 0
    while k + 1 <= n // 2 and binom.cdf(k, n, 0.5) <= alpha:  # P(Bin ≤ (k+1)−1) ≤ alpha → k+1 is allowed
        k += 1
    return k


@lru_cache(maxsize=None)
def t_quantile(p: float, df: int) -> float:
    """Student-t quantile (cached: simulations ask for the same few thousands of times)."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def sign_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(median, lo, hi): the order-statistic interval for the median with coverage ≥ ``level``.

    lo = x_(k), hi = x_(n+1−k) for k = :func:`sign_rank`; NaN bounds when no such k exists (n ≤ 5
    at 95%)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = v.size
    if n == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(v))
    k = sign_rank(n, level)
    if k == 0:
        return med, math.nan, math.nan
    return med, float(v[k - 1]), float(v[n - k])


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval; NaN bounds with fewer than 2 values; a zero spread gives a
    zero-width interval only when every value is equal."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean()) if v.size else math.nan
    if v.size < 2:
        return m, math.nan, math.nan
    half = t_quantile(0.5 + level / 2, v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return m, m - half, m + half


def unit_interval(values: Sequence[float], test: str = "sign", level: float = LEVEL) -> tuple[float, float, float]:
    """(centre, lo, hi) of per-unit values by ``test`` (``sign``: median; ``t``: mean)."""
    if test == "sign":
        return sign_interval(values, level)
    if check_test(test) == "t":
        return t_interval(values, level)
    return sign_interval(values, level)


def check_test(test: str) -> str:
    """``test`` if it names an interval family, else one ValueError listing the valid ones."""
    if test not in TESTS:
        raise ValueError(f"unknown interval {test!r}; valid: {', '.join(TESTS)}")
    return test


def describe(test: str, n: int, unit: str, level: float = LEVEL) -> str:
    """The method text the report shows for an interval over ``n`` units."""
    pct = f"{level * 100:g}%"
    if test == "sign":
        return f"median over {n} {unit}s, exact sign-test (order-statistic) {pct} interval"
    return f"mean over {n} {unit}s, Student-t {pct} interval"


def null_rates(
    draw_estimate: Callable[[np.random.Generator], Any],
    decision: Mapping[str, Any],
    trials: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """False "reproduced" and false "not reproduced" rates of a decision rule under simulated data.

    ``draw_estimate(rng)`` simulates one reproduction at the claim's unit count (under the null when
    measuring false positives, under an effect when measuring power) and returns either ``(lo, hi)``,
    judged by the pure rule :func:`~lsx.claims.verdicts.decide_interval`, or an
    :class:`~lsx.claims.statistics.Estimate`, judged by :func:`~lsx.claims.verdicts.decide` as a real
    claim is (so the ``MIN_UNITS`` gate counts too); ``decision`` is a claim's rule. Returns the
    fraction of trials decided each way."""
    from .verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, decide, decide_interval

    rng = np.random.default_rng(seed)
    counts = {REPRODUCED: 0, NOT_REPRODUCED: 0, INCONCLUSIVE: 0}
    for _ in range(int(trials)):
        drawn = draw_estimate(rng)
        if hasattr(drawn, "lo"):
            counts[decide(drawn, decision)[0]] += 1
        else:
            lo, hi = drawn
            counts[decide_interval(lo, hi, decision)] += 1
    return {k: v / trials for k, v in counts.items()}
