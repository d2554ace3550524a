"""Fort statistics and the Fig. 5 panel figure on hand-made job records (no training)."""

import json
from pathlib import Path

import numpy as np
import pytest

from lsx.claims import stats_fort as sf
from lsx.claims.records import JobRecord
from lsx.claims.statistics import InsufficientData


def Job(seed, config, metrics, job_dir=Path("job")):  # noqa: N802  (reads like the record it builds)
    return JobRecord(config=config, metrics=metrics, seed=seed, job_dir=Path(job_dir))


def _width_jobs(widths_by_x, key="optimizer.lr", noise=0.0, seeds=range(6)):
    rng = np.random.default_rng(0)
    jobs = []
    for s in seeds:
        for x, w in widths_by_x.items():
            section, name = key.split(".")
            jobs.append(
                Job(s, {section: {name: x}, "seed": s}, {"width_mean": w + noise * rng.normal(), "base_train_loss": 0.05})
            )
    return jobs


def test_fort_trend_reaches_each_verdict_side():
    up = sf.fort_trend(_width_jobs({1e-4: 0.1, 1e-3: 0.2, 1e-2: 0.3}, noise=0.01), x="optimizer.lr", y="metrics.width_mean")
    assert up.value > 0.9 and up.lo > 0 and up.n == 6 and set(up.details["per_unit"]) == {str(s) for s in range(6)}
    down = sf.fort_trend(_width_jobs({1e-4: 0.3, 1e-3: 0.2, 1e-2: 0.1}, noise=0.01), x="optimizer.lr", y="metrics.width_mean")
    assert down.hi < 0
    flat = sf.fort_trend(_width_jobs({1e-4: 0.2, 1e-3: 0.2, 1e-2: 0.2}, noise=0.05), x="optimizer.lr", y="metrics.width_mean")
    assert flat.lo < 0 < flat.hi  # noise only: the interval crosses 0
    assert [r["n"] for r in up.table] == [6, 6, 6] and up.table[0]["base_train_loss"] == pytest.approx(0.05)


def test_fort_trend_is_within_seed_so_ties_do_not_cap_rho():
    # the same increasing curve in every seed: pooled over seeds the tied x values capped ρ at 0.896
    e = sf.fort_trend(
        _width_jobs({0.0: 0.1, 0.2: 0.2, 0.5: 0.3}, key="model.dropout", seeds=range(3)),
        x="model.dropout",
        y="metrics.width_mean",
    )
    assert e.value == 1.0 and e.n == 3 and "within each seed" in e.method


def test_fort_trend_range_selects_the_rise_before_too_strong():
    jobs = _width_jobs({0.0: 0.1, 1e-4: 0.2, 1e-3: 0.3, 1e-2: 0.05}, key="optimizer.weight_decay", noise=0.005)
    whole = sf.fort_trend(jobs, x="optimizer.weight_decay", y="metrics.width_mean")
    rise = sf.fort_trend(jobs, x="optimizer.weight_decay", y="metrics.width_mean", x_max=1e-3)
    assert rise.lo > 0.5 and whole.value < rise.value and rise.details["jobs"] == 18
    for j in jobs:  # the "too strong" end may have no width at all (no direction reached the threshold)
        if j.config["optimizer"]["weight_decay"] == 1e-2:
            j.metrics["width_mean"] = None
    assert sf.fort_trend(jobs, x="optimizer.weight_decay", y="metrics.width_mean", x_max=1e-3).value == rise.value


def test_fort_trend_one_seed_has_no_interval_and_bad_input_is_named():
    e = sf.fort_trend(_width_jobs({1: 0.1, 2: 0.2, 3: 0.3}, seeds=(0,)), x="optimizer.lr", y="metrics.width_mean")
    assert e.n == 1 and np.isnan(e.lo) and np.isnan(e.hi)
    with pytest.raises(ValueError, match="unknown interval 'bootstrap'; valid: sign, t"):
        sf.fort_trend(_width_jobs({1: 0.1, 2: 0.2}), x="optimizer.lr", y="metrics.width_mean", interval="bootstrap")
    with pytest.raises(InsufficientData, match="1 value"):
        sf.fort_trend(_width_jobs({1: 0.1, 2: 0.2}), x="optimizer.lr", y="metrics.width_mean", x_max=1)
    with pytest.raises(KeyError):
        sf.fort_trend(_width_jobs({1: 0.1, 2: 0.2}), x="optimizer.lr", y="metrics.no_such_metric")


def test_fort_list_trend_is_within_each_job_then_over_jobs():
    rng = np.random.default_rng(0)
    jobs = [
        Job(
            s,
            {},
            {
                "max_lrs": [1e-3, 1e-2, 3e-2, 1e-1],
                "advantage_acc": list(np.array([0.0, 0.01, 0.02, 0.05]) + 0.002 * s + 0.003 * rng.normal(size=4)),
            },
        )
        for s in range(6)
    ]
    e = sf.fort_list_trend(jobs, x="metrics.max_lrs", y="metrics.advantage_acc")
    assert e.value > 0.8 and e.lo > 0 and e.n == 6 and len(e.details["per_unit"]) == 6 and "within each job" in e.method
    assert sf.fort_list_trend(jobs, x="metrics.max_lrs", y="metrics.advantage_acc", unit="seed").n == 6
    one_unit = [Job(0, {}, j.metrics) for j in jobs]  # six jobs of one training seed are one unit
    assert sf.fort_list_trend(one_unit, x="metrics.max_lrs", y="metrics.advantage_acc", unit="seed").n == 1
    bad = [Job(0, {}, {"max_lrs": [1, 2], "advantage_acc": [1.0]})]
    with pytest.raises(ValueError, match="has 2 values"):
        sf.fort_list_trend(bad, x="metrics.max_lrs", y="metrics.advantage_acc")


def test_width_panels_draw_own_and_sibling_presets(tmp_path):
    root = tmp_path / "jobs"
    cfg = {
        "analysis": {"job": "tunnel_width"},
        "training": {"epochs": 5},
        "scale": "cpu",
        "data": {"name": "digits"},
        "model": {"name": "simple_cnn", "dropout": 0.0},
        "optimizer": {"lr": 1e-3, "weight_decay": 0.0},
    }
    own = []
    for i, (preset, key, x) in enumerate(
        [
            ("fort_fig5", "lr", 1e-3),
            ("fort_fig5", "lr", 1e-2),
            ("fort_fig5_l2", "weight_decay", 1e-3),
            ("fort_fig5_l2", "weight_decay", 0.0),
        ]
    ):
        d = root / f"tunnel_width_{preset}_{i:012d}"
        d.mkdir(parents=True)
        c = json.loads(json.dumps(cfg))
        c["optimizer"][key] = x
        c["experiment_name"] = preset
        (d / "config.yaml").write_text(json.dumps(c))  # JSON is YAML
        (d / "results.json").write_text(json.dumps({"seed": 0, "metrics": {"width_mean": 0.1 * (i + 1)}}))
        (d / "DONE").write_text("done\n")
        if preset == "fort_fig5":
            own.append(Job(0, c, {"width_mean": 0.1 * (i + 1)}, d))
    assert len(sf.sibling_jobs(own, "fort_fig5_l2")) == 2
    out = sf.tunnel_width_panels(
        own,
        tmp_path / "fig.png",
        panels=[
            {"x": "optimizer.lr", "preset": "fort_fig5", "log_x": True},
            {"x": "optimizer.weight_decay", "preset": "fort_fig5_l2", "log_x": True},
            {"x": "model.dropout", "preset": "fort_fig5_dropout"},
        ],
    )
    assert out.exists() and out.stat().st_size > 5000
