"""Statistics for Draxler et al. 2018 (Essentially no barriers), Table 1 and Sec. 4.3.

The unit is an independent set of minima: one autoneb job's ``optima.seeds`` (jobs that share a
minimum are merged into one unit, since their paths are not independent). Per unit the MST pairs'
values are averaged as Table 1 averages them ("Min." = the average at the minima, "Sadd." = the
maximum of each metric along each final path, averaged), and one *measure* of that row is taken —
the relative quantities Sec. 4.3 argues from:

- ``saddle_minimum_factor``: saddle / minima train loss (Table 1 "FACTOR"; note 3: "noisy because the
  denominator can approach zero");
- ``saddle_over_chance``: saddle train loss / the loss of an untrained network, ln C (note 1);
- ``saddle_over_test_minima``: saddle train loss / test loss at the minima (note 2);
- ``test_loss_saddle_ratio``: saddle / minima test loss (abstract: "essentially flat in both the
  training and test landscapes"; Fig. 6);
- ``relative_error_rise``: the test-error rise at the saddle / the test error at the minima ("these
  differences are small compared to the error rate at the minima");
- ``line_over_path``: max train loss on the straight segment / on the AutoNEB path (Fig. 1 right,
  Fig. 5: the path's highest loss falls by a factor of five, then two, from the first cycle on).

The interval is :func:`lsx.claims.inference.unit_interval` over units. ``PAPER_TABLE1`` is the
paper's Table 1 (every row a unit of the paper's own), so a rule can be checked against it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from lsx.claims.inference import describe, unit_interval
from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, InsufficientData, register_statistic

# Draxler et al. 2018, Table 1 (C10+/C100+, ResNets and DenseNets; losses are cross-entropies, errors in
# percent, "delta" the paper's own ΔTEST ERROR column); chance = −log(1/C), Table 1 note 1.
_COLUMNS = (
    "dataset",
    "architecture",
    "train_loss_minima",
    "train_loss_saddle",
    "factor",
    "epoch",
    "test_loss_minima",
    "test_loss_saddle",
    "test_error_minima",
    "test_error_saddle",
    "delta",
)
_ROWS = (
    ("C10+", "ResNet-20", 0.016, 0.032, 2, 104, 0.36, 0.38, 8.5, 8.9, 0.5),
    ("C10+", "ResNet-32", 0.006, 0.012, 2, 107, 0.36, 0.37, 7.5, 7.9, 0.4),
    ("C10+", "ResNet-44", 0.003, 0.006, 2, 122, 0.36, 0.37, 7.1, 7.5, 0.4),
    ("C10+", "ResNet-56", 0.002, 0.015, 7, 83, 0.35, 0.36, 6.9, 7.5, 0.6),
    ("C10+", "DenseNet-40-12", 0.001, 0.005, 6, 205, 0.25, 0.25, 5.6, 6.0, 0.4),
    ("C10+", "DenseNet-100-12-BC", 0.001, 0.003, 5, 205, 0.21, 0.22, 4.9, 5.2, 0.3),
    ("C100+", "ResNet-20", 0.353, 0.560, 2, 79, 1.42, 1.48, 33.3, 34.8, 1.5),
    ("C100+", "ResNet-32", 0.142, 0.358, 3, 77, 1.53, 1.57, 31.5, 33.7, 2.2),
    ("C100+", "ResNet-44", 0.075, 0.215, 3, 85, 1.60, 1.62, 30.8, 32.6, 1.8),
    ("C100+", "ResNet-56", 0.043, 0.298, 7, 71, 1.64, 1.66, 30.3, 32.4, 2.0),
    ("C100+", "DenseNet-40-12", 0.010, 0.081, 8, 166, 1.30, 1.31, 26.3, 27.7, 1.4),
    ("C100+", "DenseNet-100-12-BC", 0.005, 0.023, 5, 205, 1.12, 1.13, 23.7, 24.6, 0.9),
)


def _paper_row(values: tuple) -> dict[str, Any]:
    r = dict(zip(_COLUMNS, values))
    r["chance_loss"] = math.log(10 if r["dataset"] == "C10+" else 100)
    r["test_error_rise"] = r["delta"] / 100.0
    r["test_error_minima"], r["test_error_saddle"] = r["test_error_minima"] / 100.0, r["test_error_saddle"] / 100.0
    r["saddle_minimum_factor"] = float(r["factor"])  # the printed factor (computed from unrounded losses)
    return r


PAPER_TABLE1: tuple[dict[str, Any], ...] = tuple(_paper_row(v) for v in _ROWS)
PAPER_SOURCE = "Draxler et al. 2018, Table 1 (and its notes 1-3, Sec. 4.3)"


def _ratio(num: str, den: str) -> Callable[[dict[str, Any]], float]:
    def f(r: dict[str, Any]) -> float:
        return float(r[num]) / float(r[den]) if float(r[den]) > 0 else math.nan

    return f


MEASURES: dict[str, tuple[Callable[[dict[str, Any]], float], str]] = {
    "saddle_minimum_factor": (lambda r: float(r["saddle_minimum_factor"]), "saddle / minima train loss"),
    "saddle_over_chance": (_ratio("train_loss_saddle", "chance_loss"), "saddle train loss / ln C (untrained net)"),
    "saddle_over_test_minima": (_ratio("train_loss_saddle", "test_loss_minima"), "saddle train loss / minima test loss"),
    "test_loss_saddle_ratio": (_ratio("test_loss_saddle", "test_loss_minima"), "max test loss on the path / at the minima"),
    "relative_error_rise": (_ratio("test_error_rise", "test_error_minima"), "test-error rise at the saddle / minima test error"),
    "line_over_path": (_ratio("linear_max_train_loss", "train_loss_saddle"), "max train loss: straight line / AutoNEB path"),
}
_PAIR_FIELDS = {
    "saddle_minimum_factor": ("train_loss_minima", "train_loss_saddle"),
    "saddle_over_chance": ("train_loss_saddle",),
    "saddle_over_test_minima": ("train_loss_saddle", "test_loss_minima"),
    "test_loss_saddle_ratio": ("test_loss_saddle", "test_loss_minima"),
    "relative_error_rise": ("test_error_minima", "test_error_saddle"),
    "line_over_path": ("linear_max_train_loss", "train_loss_saddle"),
}


def paper_values(measure: str) -> list[float]:
    """The measure on every row of the paper's Table 1 (ValueError for ``line_over_path``: no such column)."""
    if _check_measure(measure) == "line_over_path":
        raise ValueError("Table 1 has no straight-line barrier; line_over_path rests on Fig. 1 and Fig. 5")
    return [MEASURES[measure][0](r) for r in PAPER_TABLE1]


def _check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise ValueError(f"unknown Draxler measure {measure!r}; valid: {', '.join(MEASURES)}")
    return measure


def _units(jobs: Sequence[JobRecord]) -> list[list[JobRecord]]:
    """Jobs grouped into independent units: jobs that share a minimum (an optima seed) are one unit."""
    seeds = [frozenset(int(s) for s in (j.get("optima.seeds", None) or [])) for j in jobs]
    parent = list(range(len(jobs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(len(jobs)):
        for b in range(a + 1, len(jobs)):
            if not seeds[a] or not seeds[b] or seeds[a] & seeds[b]:
                parent[find(a)] = find(b)  # unknown minima: cannot prove independence, so merge
    groups: dict[int, list[JobRecord]] = {}
    for i, j in enumerate(jobs):
        groups.setdefault(find(i), []).append(j)
    return list(groups.values())


def unit_row(jobs: Sequence[JobRecord], measure: str) -> dict[str, Any]:
    """One unit's Table 1 row: the mean of each field over its jobs' MST pairs (``metrics.mst_pairs``)."""
    pairs: list[dict[str, Any]] = []
    need = _PAIR_FIELDS[_check_measure(measure)]
    for j in jobs:
        for p in j.get("metrics.mst_pairs", None) or []:
            missing = [f for f in need if f not in p]
            if missing:
                raise InsufficientData(
                    f"MST pair {p.get('pair')} of job {j.job_dir.name} lacks {', '.join(missing)} "
                    f"(measure {measure}; rerun the autoneb job with this code); fields: {', '.join(p)}"
                )
            pairs.append(p)
    if not pairs:
        raise InsufficientData(f"jobs {', '.join(j.job_dir.name for j in jobs)} have no MST pairs (metrics.mst_pairs)")
    row: dict[str, Any] = {f: float(np.mean([float(p[f]) for p in pairs])) for f in need}
    if measure == "saddle_minimum_factor":  # Table 1's FACTOR: the ratio of the averaged losses
        row["saddle_minimum_factor"] = row["train_loss_saddle"] / max(row["train_loss_minima"], 1e-12)
    if measure == "relative_error_rise":
        row["test_error_rise"] = row["test_error_saddle"] - row["test_error_minima"]
    if measure == "saddle_over_chance":
        chance = {float(j.get("metrics.chance_loss")) for j in jobs}
        if len(chance) != 1:
            raise InsufficientData(f"jobs of one unit disagree on chance_loss: {sorted(chance)}")
        row["chance_loss"] = chance.pop()
    row["pairs"] = len(pairs)
    return row


@register_statistic("draxler_table1")
def draxler_table1(jobs: Sequence[JobRecord], measure: str, test: str = "sign", log: bool = False) -> Estimate:
    """One Table 1 ``measure`` per independent set of minima; ``unit_interval`` over those sets
    (``log`` with ``test: t``: the interval of the mean log, back-transformed: a geometric mean)."""
    fn, what = MEASURES[_check_measure(measure)]
    table, values = [], []
    for unit in sorted(_units(jobs), key=lambda g: min(j.job_dir.name for j in g)):
        row = unit_row(unit, measure)
        v = fn(row)
        if log and not v > 0:
            names = [j.job_dir.name for j in unit]
            raise InsufficientData(f"{measure}={v} in unit {names} is not positive; its log is undefined")
        values.append(math.log(v) if log else v)
        seeds = sorted({int(s) for j in unit for s in (j.get("optima.seeds", None) or [])})
        table.append(
            {
                "unit": ", ".join(j.job_dir.name for j in unit),
                "minima": seeds,
                measure: v,
                **{k: row[k] for k in row if k != measure},
                "test_examples": unit[0].metrics.get("test_examples"),
            }
        )
    c, lo, hi = unit_interval(values, test)
    if log:
        c, lo, hi = (math.exp(x) if math.isfinite(x) else x for x in (c, lo, hi))
    paper = paper_values(measure) if measure != "line_over_path" else [math.nan]
    return Estimate(
        c,
        lo,
        hi,
        len(values),
        f"{what}: {describe(test, len(values), 'independent set of minima')}" + (" on logs" if log else ""),
        {
            "measure": measure,
            "test": test,
            "log": log,
            "per_unit": [r[measure] for r in table],
            "paper_table1": {"source": PAPER_SOURCE, "min": min(paper), "max": max(paper)},
        },
        table,
    )
