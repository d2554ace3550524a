"""Statistics for Draxler et al. 2018 (Essentially no barriers), Table 1.

``draxler_mst_pairs`` pools the per-pair rows that the autoneb job writes for the minimum spanning
tree's pairs (``metrics.mst_pairs``) over every job of the preset (each job one set of optima, i.e.
one set of training seeds), and estimates the mean of one field — the saddle/minimum train-loss factor
(geometric mean with ``log: true``) or the test-error rise at the saddle — with a t-interval over the
pairs. Pairs of one job share minima, so the interval is optimistic when a job contributes several;
the table lists every pair, its job and the number of test examples behind its error.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, InsufficientData, register_statistic, t_interval


@register_statistic("draxler_mst_pairs")
def draxler_mst_pairs(jobs: Sequence[JobRecord], y: str = "saddle_minimum_factor", log: bool = False) -> Estimate:
    """Mean of ``y`` over all MST pairs of all jobs (log scale and back with ``log``: a geometric mean)."""
    rows: list[dict[str, Any]] = []
    values: list[float] = []
    for j in jobs:
        pairs = j.get("metrics.mst_pairs")
        n_test = j.metrics.get("test_examples")
        for p in pairs or []:
            if y not in p:
                raise InsufficientData(f"MST pair {p.get('pair')} of job {j.job_dir.name} has no field {y!r}; fields: {', '.join(p)}")
            v = float(p[y])
            if log and not v > 0:
                raise InsufficientData(f"{y}={v} for pair {p.get('pair')} is not positive; its log is undefined")
            values.append(math.log(v) if log else v)
            rows.append({"job": j.job_dir.name, "pair": p.get("pair"), y: v,
                         "train_loss_minima": p.get("train_loss_minima"), "train_loss_saddle": p.get("train_loss_saddle"),
                         "test_error_rise": p.get("test_error_rise"), "test_examples": n_test,
                         "one_example": (1.0 / n_test) if n_test else None})
    if not values:
        raise InsufficientData("no MST pairs in the jobs' metrics (metrics.mst_pairs is empty or missing)")
    m, lo, hi = t_interval(values)
    if log:
        m, lo, hi = (math.exp(v) if np.isfinite(v) else v for v in (m, lo, hi))
    tests = sorted({r["test_examples"] for r in rows if r["test_examples"]})
    return Estimate(m, lo, hi, len(values),
                    f"{'geometric ' if log else ''}mean of {y} over {len(values)} MST pairs of {len(jobs)} jobs, t-interval over pairs",
                    {"y": y, "log": log, "test_examples": tests, "one_example_is": [1.0 / t for t in tests]}, rows)
