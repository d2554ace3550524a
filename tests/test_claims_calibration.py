"""Calibration of every claim statistic's decision (lsx issue 22): simulated reproductions on synthetic
job records, run through the statistic and ``decide`` exactly as a preset's claim is.

For each family, at the unit counts presets use (6, 8, 12): under the null the false "reproduced"
and the false "not reproduced" rates are each ≤ 5%; under an effect of the size the papers report
(docs/statistics.md says which) the claim is reproduced in ≥ 80% of reproductions at 6–8 units; and 3
units of one sign never reproduce. Rates are printed in the assertion messages; every simulation is
seeded, so the file is deterministic.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from lsx.claims import stats_fort, stats_li, stats_surface, stats_wedges
from lsx.claims.inference import MIN_UNITS, null_rates, sign_interval, t_interval
from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, difference, mean, ratio, spearman
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, decide

UNITS = (6, 8, 12)  # the unit counts presets use
TRIALS = 600  # per (family, unit count, null): a nominal 2.5% rate measures ≤ 5% with probability > 0.999
POWER_TRIALS = 200  # a power of 0.9 measures ≥ 0.8 with probability > 0.99
MAX_RATE = 0.05
MIN_POWER = 0.80


SIM_DIR = Path("/sim/job")  # never read: the statistics here take everything from the records


def _job(seed: int, config: dict[str, Any] | None = None, **metrics: Any) -> JobRecord:
    return JobRecord(
        config={"seed": seed, **(config or {})},
        metrics=metrics,
        seed=seed,
        job_dir=SIM_DIR,
        training=[{"seed": seed, "run_dir": f"/sim/run_{seed}", "train_loss": 0.01, "test_acc": 0.9}],
    )


def _rates(draw: Callable[[np.random.Generator], Estimate], decision: dict[str, Any], seed: int, trials: int = TRIALS) -> dict:
    return null_rates(draw, decision, trials=trials, seed=seed)


MEASURED: dict[str, tuple[str, dict[str, float]]] = {}  # every rate measured, for the table in docs/statistics.md


def _assert_calibrated(name: str, rates: dict[str, float]) -> None:
    MEASURED[name] = ("null", rates)
    msg = f"{name}: false reproduced {rates[REPRODUCED]:.3f}, false not reproduced {rates[NOT_REPRODUCED]:.3f} (limit {MAX_RATE})"
    assert rates[REPRODUCED] <= MAX_RATE and rates[NOT_REPRODUCED] <= MAX_RATE, msg


def _power(draw: Callable[[np.random.Generator], Estimate], decision: dict[str, Any], seed: int) -> dict:
    return null_rates(draw, decision, trials=POWER_TRIALS, seed=seed)


def _assert_power(name: str, rates: dict[str, float]) -> None:
    MEASURED[name] = ("effect", rates)
    assert rates[REPRODUCED] >= MIN_POWER, f"{name}: reproduced in {rates[REPRODUCED]:.3f} of reproductions (need {MIN_POWER})"


# ----------------------------------------------------------------------------- trends
# y = step · (grid index of x) + N(0, 1) within each unit, plus a unit offset (a seed's level) that a
# within-unit trend must ignore. Null: step 0. Effect: y rises by 3 noise sd over the whole sweep (1 sd
# per step over 4 values, 1.5 over 3): Fort Fig. 5's widths rise monotonically over each sweep by more
# than the seed-to-seed spread at every step, and Li Fig. 7's contours widen at every width step.
LRS = (3e-4, 1e-3, 3e-3, 1e-2)  # fort_fig5's sweep: 4 values
WIDTHS = (0.25, 0.5, 1.0)  # li_fig7's sweep: 3 values


def _trend_jobs(rng: np.random.Generator, n: int, step: float, xs=LRS) -> list[JobRecord]:
    jobs = []
    for s in range(n):
        level = 5.0 * rng.normal()
        for k, x in enumerate(xs):
            jobs.append(_job(s, {"optimizer": {"lr": x}}, width=level + step * k + rng.normal()))
    return jobs


def _list_jobs(rng: np.random.Generator, n: int, step: float, xs=LRS) -> list[JobRecord]:
    """fort_list_trend's records: one job per unit holding the whole curve as metric lists."""
    return [
        _job(s, max_lrs=list(xs), advantage=list(5.0 * rng.normal() + step * np.arange(len(xs)) + rng.normal(size=len(xs))))
        for s in range(n)
    ]


TRENDS = {
    "spearman": lambda jobs, **kw: spearman(jobs, x="optimizer.lr", y="metrics.width", **kw),
    "fort_trend": lambda jobs, **kw: stats_fort.fort_trend(jobs, x="optimizer.lr", y="metrics.width", extra=(), **kw),
    "fort_list_trend": lambda jobs, **kw: stats_fort.fort_list_trend(jobs, x="metrics.max_lrs", y="metrics.advantage", **kw),
}


def _trend_draw(name: str, n: int, step: float, xs=LRS, **kw: Any) -> Callable[[np.random.Generator], Estimate]:
    make = _list_jobs if name == "fort_list_trend" else _trend_jobs
    return lambda rng: TRENDS[name](make(rng, n, step, xs), **kw)


SWEEPS = {"spearman": (WIDTHS,), "fort_trend": (LRS, WIDTHS), "fort_list_trend": (LRS,)}  # as the presets sweep x


@pytest.mark.parametrize("name", sorted(TRENDS))
def test_trend_null_is_calibrated(name):
    for n in UNITS:
        for xs in SWEEPS[name]:
            _assert_calibrated(
                f"{name}, {n} units, {len(xs)} x values, y independent of x",
                _rates(_trend_draw(name, n, 0.0, xs), {"greater": 0.0}, seed=n),
            )
    sign = _rates(_trend_draw(name, 6, 0.0, interval="sign"), {"less": 0.0}, seed=1)
    _assert_calibrated(f"{name}, 6 units, sign interval", sign)


@pytest.mark.parametrize("name", sorted(TRENDS))
def test_trend_power(name):
    _assert_power(f"{name}, 6 units, 4 x values, rise 3 sd", _power(_trend_draw(name, 6, 1.0), {"greater": 0.0}, seed=2))
    _assert_power(f"{name}, 6 units, 3 x values, rise 3 sd", _power(_trend_draw(name, 6, 1.5, WIDTHS), {"greater": 0.0}, seed=3))
    sign = _power(_trend_draw(name, 6, 1.0, interval="sign"), {"greater": 0.0}, seed=2)  # 6 units: all ρ must be > 0
    _assert_power(f"{name} (sign), 6 units, 4 x values, rise 3 sd", sign)
    down = _power(_trend_draw(name, 6, -1.0), {"greater": 0.0}, seed=4)  # a reversed trend is "not reproduced"
    MEASURED[f"{name}, 6 units, 4 x values, reversed (fall 3 sd)"] = ("effect", down)
    assert down[NOT_REPRODUCED] >= MIN_POWER, f"{name}: reversed trend not reproduced in {down[NOT_REPRODUCED]:.3f}"


def test_surface_rise_spearman_is_the_within_unit_spearman(tmp_path):
    """surface_rise_spearman only derives y from each surface and calls spearman: its calibration is spearman's."""
    axis = np.linspace(-1.0, 1.0, 5)
    X, Y = np.meshgrid(axis, axis)
    rng = np.random.default_rng(0)
    jobs = []
    for s in range(6):
        for w in WIDTHS:
            d = tmp_path / f"s{s}_w{w}"
            d.mkdir()
            np.savez(d / "surface_grid.npz", x=axis, y=axis, train_loss=0.1 + rng.uniform(0.5, 2.0) * (X**2 + Y**2))
            jobs.append(JobRecord(config={"model": {"width": w}}, metrics={}, seed=s, job_dir=d))
    est = stats_surface.surface_rise_spearman(jobs, x="model.width", radius=1.0)
    grids = [np.load(j.job_dir / "surface_grid.npz")["train_loss"] for j in jobs]
    rise = [_job(j.seed, j.config, rise=stats_surface.mean_rise(axis, axis, z, 1.0)) for j, z in zip(jobs, grids)]
    ref = spearman(rise, x="model.width", y="metrics.rise")
    assert (est.value, est.lo, est.hi, est.n) == pytest.approx((ref.value, ref.lo, ref.hi, ref.n))
    assert est.details["per_unit"] == ref.details["per_unit"] and len(est.details["per_unit"]) == 6


# ----------------------------------------------------------------------------- paired difference and ratio
# Per unit (a seed that trains both settings): y_a = seed level + δ + N(0, 1), y_b = seed level + N(0, 1)
# (logs for ratio). Null: δ = 0. Effect: δ = 2 sd of a unit's difference (li_fig5's 3 CPU seeds showed
# ≈ 3.5 for test accuracy; Li Table 1's 3.7-point error gap, Fig. 5's ~10× sharpness ratio).
def _paired_jobs(rng: np.random.Generator, n: int, delta: float, log: bool = False, paired: bool = True) -> list[JobRecord]:
    """``paired=False``: the two groups come from disjoint seeds (the Welch / delta-method fallback)."""
    jobs = []
    for s in range(n):
        level = 3.0 * rng.normal()
        for bs, shift, seed in ((32, delta, s), (512, 0.0, s if paired else 1000 + s)):
            v = (level if paired else 3.0 * rng.normal()) + shift + rng.normal() / math.sqrt(2)  # sd 1 for a paired difference
            jobs.append(_job(seed, {"data": {"batch_size": bs}}, y=math.exp(v / 4) if log else v))  # log-ratio sd 1/4
    return jobs


def _pair_draw(stat, n: int, delta: float, paired: bool = True, **kw: Any) -> Callable[[np.random.Generator], Estimate]:
    log = stat is ratio
    return lambda rng: stat(_paired_jobs(rng, n, delta, log, paired), key="data.batch_size", a=32, b=512, y="metrics.y", **kw)


@pytest.mark.parametrize("stat, decision", [(difference, {"greater": 0.0}), (ratio, {"less": 1.0})], ids=["difference", "ratio"])
def test_paired_null_is_calibrated(stat, decision):
    for n in UNITS:
        for interval in ("t", "sign"):
            _assert_calibrated(
                f"{stat.__name__} ({interval}), {n} units, zero-mean differences / log-ratios",
                _rates(_pair_draw(stat, n, 0.0, interval=interval), decision, seed=n),
            )
        _assert_calibrated(
            f"{stat.__name__} (unpaired fallback), {n} units per group, equal means",
            _rates(_pair_draw(stat, n, 0.0, paired=False), decision, seed=200 + n),
        )


@pytest.mark.parametrize(
    "stat, decision, delta", [(difference, {"greater": 0.0}, 2.0), (ratio, {"less": 1.0}, -2.0)], ids=["difference", "ratio"]
)
def test_paired_power(stat, decision, delta):
    _assert_power(f"{stat.__name__}, 6 units, effect 2 sd", _power(_pair_draw(stat, 6, delta), decision, seed=5))


# ----------------------------------------------------------------------------- mean over units
# t: unit values N(μ, 1), null μ at the bound. sign: a skewed unit distribution (bound + Exp(1) − ln 2)
# whose MEDIAN is exactly at the bound (its mean is not: the sign interval must still hold).
def _mean_draw(n: int, centre: float, skewed: bool = False, **kw: Any) -> Callable[[np.random.Generator], Estimate]:
    def draw(rng: np.random.Generator) -> Estimate:
        v = centre + (rng.exponential(size=n) - math.log(2) if skewed else rng.normal(size=n))
        return mean([_job(s, gap=float(x)) for s, x in enumerate(v)], y="metrics.gap", **kw)

    return draw


@pytest.mark.parametrize(
    "decision", [{"greater": 0.5}, {"less": 0.5}, {"between": [0.5, 3.0]}], ids=["greater", "less", "between"]
)
def test_mean_null_is_calibrated(decision):
    for n in UNITS:
        _assert_calibrated(f"mean (t), {n} units, mean at the bound", _rates(_mean_draw(n, 0.5), decision, seed=n))
        _assert_calibrated(
            f"mean (sign), {n} units, skewed, median at the bound",
            _rates(_mean_draw(n, 0.5, skewed=True, interval="sign"), decision, seed=100 + n),
        )


def test_mean_power():
    _assert_power("mean (t), 6 units, 2 sd above the bound", _power(_mean_draw(6, 2.0), {"greater": 0.0}, seed=6))
    sign = _power(_mean_draw(6, 2.0, interval="sign"), {"greater": 0.0}, seed=7)
    _assert_power("mean (sign), 6 units, 2 sd above the bound", sign)


# ----------------------------------------------------------------------------- li_sign_flip
# log y per unit: N(μ_a, 1) at key=a and N(μ_b, 1) at key=b; the claim: μ_a > 0 and μ_b < 0.
def _flip_draw(n: int, mu_a: float, mu_b: float) -> Callable[[np.random.Generator], Estimate]:
    def draw(rng: np.random.Generator) -> Estimate:
        jobs = [_job(s, {"wd": 0.0}, r=math.exp(mu_a + rng.normal())) for s in range(n)]
        jobs += [_job(s, {"wd": 5e-3}, r=math.exp(mu_b + rng.normal())) for s in range(n)]
        return stats_li.li_sign_flip(jobs, key="wd", a=0.0, b=5e-3, y="metrics.r", log=True)

    return draw


def test_li_sign_flip_null_is_calibrated():
    for n in UNITS:
        # the worst cases of the composite null: one mean at 0 and the other far on the claimed side
        # (false "reproduced" ≤ 1.25%; the mirrored case is the same computation), and both at 0
        # (false "not reproduced" ≤ 2.5%; with two 95% group intervals it would be 4.9%)
        for mu_a, mu_b in ((0.0, -10.0), (0.0, 0.0)):
            _assert_calibrated(
                f"li_sign_flip, {n} units per group, μ_a = {mu_a}, μ_b = {mu_b}",
                _rates(_flip_draw(n, mu_a, mu_b), {"greater": 0.0}, seed=n),
            )


def test_li_sign_flip_power():
    _assert_power("li_sign_flip, 8 units, ±2 sd", _power(_flip_draw(8, 2.0, -2.0), {"greater": 0.0}, seed=8))
    _assert_power("li_sign_flip, 6 units, ±2.5 sd", _power(_flip_draw(6, 2.5, -2.5), {"greater": 0.0}, seed=9))


# ----------------------------------------------------------------------------- wedges and surfaces
def _wedge_draw(n: int, centre: float, **kw: Any) -> Callable[[np.random.Generator], Estimate]:
    """fort_toy's aggregation: one value per (D, n) pair, averaged per trial seed, then over seeds."""

    def draw(rng: np.random.Generator) -> Estimate:
        jobs = [
            JobRecord(
                config={"analysis": {"seed": s}},
                metrics={"pairs": centre + rng.normal(size=3)},
                seed=0,
                job_dir=Path(f"/sim/toy_{s}"),
            )
            for s in range(n)
        ]
        return stats_wedges._mean_over_units(
            jobs,
            "analysis.seed",
            kw.get("interval", "t"),
            lambda j: {(10 + k, 2): float(v) for k, v in enumerate(j.metrics["pairs"])},
        )

    return draw


def test_wedge_statistics_are_calibrated_and_powered():
    for n in UNITS:
        _assert_calibrated(
            f"wedge offset (t), {n} trial seeds, mean at −2", _rates(_wedge_draw(n, -2.0), {"between": [-2.0, 2.0]}, seed=n)
        )
        _assert_calibrated(
            f"wedge offset (sign), {n} trial seeds, median at 2",
            _rates(_wedge_draw(n, 2.0, interval="sign"), {"between": [-2.0, 2.0]}, seed=50 + n),
        )
    _assert_power("wedge offset, 6 trial seeds, centred at 0", _power(_wedge_draw(6, 0.0), {"between": [-2.0, 2.0]}, seed=10))


def _surface_draw(monkeypatch, stat, n: int, values: Callable[[np.random.Generator], np.ndarray], **kw: Any):
    """quickstart's statistics with the surface read replaced by a per-unit value (the grid code is
    tested in test_claims_li_fig7; here only the aggregation over units is)."""
    monkeypatch.setattr(stats_surface, "_grid", lambda j, metric: (j.metrics["v"], None, None))
    monkeypatch.setattr(stats_surface, "border_ratio", lambda v, *_: v)
    monkeypatch.setattr(stats_surface, "argmin_offset", lambda v, *_: v)
    return lambda rng: stat([JobRecord({}, {"v": float(v)}, s, Path(f"/sim/q{s}")) for s, v in enumerate(values(rng))], **kw)


def test_surface_statistics_are_calibrated_and_powered(monkeypatch):
    border, offset = stats_surface.surface_border_ratio, stats_surface.surface_argmin_offset
    for n in UNITS:
        log_normal = _surface_draw(monkeypatch, border, n, lambda rng: np.exp(rng.normal(size=n)))
        _assert_calibrated(f"surface_border_ratio, {n} units, log-ratio 0", _rates(log_normal, {"greater": 1.0}, seed=n))
        # a discrete grid distance whose median sits at the bound: half the units at 0 or 1, half at 2 or 3
        grid = _surface_draw(monkeypatch, offset, n, lambda rng: rng.integers(0, 2, n) + 2 * rng.integers(0, 2, n))
        _assert_calibrated(f"surface_argmin_offset (sign), {n} units, median at 1.5", _rates(grid, {"less": 1.5}, seed=n))
    flat = _surface_draw(monkeypatch, offset, 6, lambda rng: rng.choice([0.0, 0.0, 0.0, 1.0], 6))
    _assert_power("surface_argmin_offset, 6 units, minimum at or next to the centre", _power(flat, {"less": 1.5}, seed=11))


# ----------------------------------------------------------------------------- degenerate intervals
DEGENERATE = {
    "spearman": lambda: spearman(
        [_job(s, {"optimizer": {"lr": x}}, width=x) for s in range(3) for x in LRS], x="optimizer.lr", y="metrics.width"
    ),
    "fort_trend": lambda: stats_fort.fort_trend(
        [_job(s, {"optimizer": {"lr": x}}, width=x) for s in range(3) for x in LRS], x="optimizer.lr", y="metrics.width", extra=()
    ),
    "fort_list_trend": lambda: stats_fort.fort_list_trend(
        [_job(s, max_lrs=list(LRS), adv=list(LRS)) for s in range(3)], x="metrics.max_lrs", y="metrics.adv"
    ),
    "mean": lambda: mean([_job(s, gap=1.0 + 0.01 * s) for s in range(3)], y="metrics.gap"),
    "difference": lambda: difference(
        [_job(s, {"k": k}, y=float(k + s)) for s in range(3) for k in (0, 1)], key="k", a=1, b=0, y="metrics.y"
    ),
    "ratio": lambda: ratio(
        [_job(s, {"k": k}, y=float(1 + k) * (1 + s)) for s in range(3) for k in (0, 1)], key="k", a=1, b=0, y="metrics.y"
    ),
    "li_sign_flip": lambda: stats_li.li_sign_flip(
        [_job(s, {"k": k}, y=2.0 if k else 0.5) for s in range(3) for k in (0, 1)], key="k", a=1, b=0, y="metrics.y", log=True
    ),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_three_units_of_one_sign_never_reproduce(name):
    est = DEGENERATE[name]()
    assert est.n == 3 and est.value > 0
    verdict, reason = decide(est, {"greater": 0.0})
    assert verdict == INCONCLUSIVE, (name, est.lo, est.hi, reason)
    assert reason == "n = 3 units; a calibrated 95% decision needs ≥ 6 (add seeds)"


def test_the_check_fails_a_miscalibrated_rule():
    """The harness can fail: the 3-seed percentile bootstrap these statistics used (its interval is
    [min, max] of the units, as each single-unit resample has probability 1/27 > 2.5%) and an 80% t
    interval both exceed 5% false "reproduced" under a symmetric null."""

    def bootstrap3(rng):
        v = rng.normal(size=3)
        return float(v.min()), float(v.max())

    def t80(rng):
        return t_interval(rng.normal(size=6), level=0.80)[1:]

    for name, draw, expected in (("3-unit bootstrap", bootstrap3, 1 / 8), ("80% t interval, 6 units", t80, 0.10)):
        rates = null_rates(draw, {"greater": 0.0}, trials=TRIALS, seed=0)
        MEASURED[f"miscalibrated: {name}"] = ("null", rates)
        assert rates[REPRODUCED] > MAX_RATE and rates[REPRODUCED] == pytest.approx(expected, abs=0.04), (name, rates)


def test_rank_correlation_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    from lsx.claims.statistics import rank_correlation

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 12))
        x = rng.integers(0, 5, n).astype(float)
        y = rng.integers(0, 4, n).astype(float) if rng.random() < 0.5 else rng.normal(size=n)
        ours = rank_correlation(x, y)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(ours)
        else:
            assert ours == pytest.approx(spearmanr(x, y).statistic, abs=1e-12), (x, y)


def test_no_sign_interval_below_six_units_and_min_units_is_six():
    assert MIN_UNITS == 6
    for n in range(1, 6):
        assert all(math.isnan(v) for v in sign_interval(np.arange(n) + 1.0)[1:])  # 2 · 0.5^n > 5%: no 95% interval
    assert sign_interval(np.arange(6) + 1.0)[1:] == (1.0, 6.0)


def _print_table() -> None:
    """Run every simulation above and print its rates (the table in docs/statistics.md)."""
    import inspect
    import tempfile

    for name, fn in sorted(globals().items()):
        if not name.startswith("test_") or not callable(fn):
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        argsets = [
            dict(zip([a.strip() for a in m.args[0].split(",")], v if isinstance(v, tuple) else (v,)))
            for m in marks
            for v in m.args[1]
        ] or [{}]
        for args in argsets:
            with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
                extra = {"monkeypatch": mp, "tmp_path": Path(tmp)}
                fn(**args, **{k: v for k, v in extra.items() if k in inspect.signature(fn).parameters})
    print("| simulation | data | reproduced | not reproduced | inconclusive |\n|---|---|---|---|---|")
    for name, (kind, r) in MEASURED.items():
        print(f"| {name} | {kind} | {r[REPRODUCED]:.3f} | {r[NOT_REPRODUCED]:.3f} | {r[INCONCLUSIVE]:.3f} |")


if __name__ == "__main__":  # python tests/test_claims_calibration.py
    _print_table()
