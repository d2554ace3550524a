"""Sweeps a researcher can trust: failed jobs don't end a multirun, aggregation keeps every point."""

import csv
import json

import pytest
import yaml
from conftest import run_module

DIVERGE = ("optimizer=sgd", "debug=fast", "data.batch_size=8")  # lr=1e8 gives a NaN loss within 8 steps


def _fake_job(sweep, num, overrides, wd, lr=0.001, seed=0, metric=None, status="ok", reason=None):
    """A job run directory as lsx writes it (config.yaml, results.json, DONE, status.json, .hydra)."""
    d = sweep / str(num)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    cfg = {
        "seed": seed,
        "optimizer": {"name": "adam", "lr": lr, "weight_decay": wd},
        "data": {"name": "digits"},
        "analysis": {"job": "tunnel_width"},
        "experiment_name": "fort_fig5",
    }
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    rec = {"status": status}
    if status == "ok":
        res = {
            "job": "tunnel_width",
            "seed": seed,
            "overrides": overrides,
            "metrics": {"width_mean": metric, "elapsed_s": 1.0},
            "artifacts": {},
        }
        (d / "results.json").write_text(json.dumps(res))
        (d / "DONE").write_text("x\n")
    else:
        rec.update(reason=reason, error_type="NonFiniteLossError")
    (d / "status.json").write_text(json.dumps(rec))
    return d


def _l2_sweep(tmp_path):
    """An l2 sweep whose default point (wd=0.0) carries no weight-decay override (an older cache
    hit's results), two seeds per point, and one failed job."""
    sweep = tmp_path / "sweep"
    n = 0
    for wd, ov in ((0.0, ["optimizer.lr=0.001"]), (1e-4, None), (1e-3, None)):
        for seed in (0, 1):
            _fake_job(
                sweep,
                n,
                (ov or [f"optimizer.weight_decay={wd}"]) + [f"seed={seed}"],
                wd,
                seed=seed,
                metric=1.0 + 10 * wd + 0.1 * seed,
            )
            n += 1
    _fake_job(sweep, n, ["optimizer.weight_decay=0.01", "seed=0"], 1e-2, status="failed", reason="loss became nan")
    return sweep


def test_aggregation_keeps_the_default_point_and_never_averages_failed_jobs(tmp_path):
    from lsx.cli.aggregate import aggregate
    from lsx.tracking.aggregate import group_mean

    sweep = _l2_sweep(tmp_path)
    out = aggregate(sweep, y_keys=["metrics.width_mean"])
    pts = group_mean(out["rows"], "optimizer.weight_decay", "metrics.width_mean")
    assert [p[0] for p in pts] == [0.0, 1e-4, 1e-3]  # the default point is there; the failed 1e-2 is not
    assert all(p[3] == 2 for p in pts) and abs(pts[0][1] - 1.05) < 1e-9
    assert "optimizer.weight_decay" in out["swept"]
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 7
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "loss became nan" and failed[0]["metrics.width_mean"] == ""
    cols = list(rows[0])
    assert cols[:5] == ["run_dir", "job", "seed", "status", "reason"]
    assert "config.data.name" not in cols and "metrics.elapsed_s" not in cols  # constant columns dropped ...
    consts = json.loads((sweep / "summary_constants.json").read_text())
    assert consts["config.data.name"] == "digits" and consts["metrics.elapsed_s"] == 1.0  # ... written once
    assert (sweep / "width_mean_vs_optimizer_weight_decay.png").exists()


def test_aggregate_plot_has_title_with_n_and_labels(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from lsx.cli import aggregate as agg
    from lsx.plots import common

    seen = []
    real = common.save_figure
    monkeypatch.setattr(common, "save_figure", lambda fig, path, **k: (seen.append(fig), real(fig, path, **k))[1])
    agg.aggregate(_l2_sweep(tmp_path), y_keys=["width_mean"], x_keys=["override.optimizer.weight_decay"])
    (fig,) = seen
    ax = fig.axes[0]
    assert "6 jobs" in ax.get_title() and "n = 2 seeds per point" in ax.get_title() and "1 failed job" in ax.get_title()
    assert ax.get_xlabel() == "optimizer.weight_decay" and ax.get_ylabel().startswith("width_mean")
    assert fig.get_layout_engine() is not None
    plt.close("all")


def test_unknown_x_or_y_is_one_error_listing_valid_keys(tmp_path):
    sweep = _l2_sweep(tmp_path)
    r = run_module("lsx.aggregate", str(sweep), "--x", "optimizer.wd")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "unknown --x 'optimizer.wd'" in r.stderr and "optimizer.weight_decay" in r.stderr
    r = run_module("lsx.aggregate", str(sweep), "--y", "metrics.widht_mean")
    assert r.returncode == 2 and "valid: metrics.elapsed_s, metrics.width_mean" in r.stderr


def test_cache_hit_records_the_current_runs_overrides(compose, tmp_path):
    from lsx.cli.analyze import run_analysis

    c = compose(
        "analysis=tunnel_width",
        "debug=fast",
        "analysis.num_directions=2",
        "analysis.threshold.mode=relative_factor",
        "analysis.threshold.value=2.0",
    )
    first = run_analysis(dict(c, _overrides=["optimizer.lr=0.001"]), tmp_path / "run1", progress=False)
    second = run_analysis(dict(c, _overrides=["optimizer.weight_decay=0.0"]), tmp_path / "run2", progress=False)
    assert first["job_dir"] == second["job_dir"] and second["cached"] and not first["cached"]
    stored = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert stored["overrides"] == ["optimizer.weight_decay=0.0"]


@pytest.mark.slow  # end to end, ~10 s: make test-all (the fast suite stays under 5 min)
def test_failed_job_does_not_end_the_multirun(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", "-m", *DIVERGE, "optimizer.lr=1e8,1e-2,1e-3")
    assert res.returncode == 1, res.stderr[-2000:]
    sweep = next((out / "multirun").glob("*/*"))
    status = {d.name: json.loads((d / "status.json").read_text()) for d in sweep.iterdir() if d.is_dir()}
    assert status["0"]["status"] == "failed" and status["0"]["error_type"] == "NonFiniteLossError"
    assert status["1"] == {"status": "ok"} and status["2"] == {"status": "ok"}  # the later jobs ran
    assert "3 jobs: 2 ok, 1 failed: 0 (training loss became nan" in res.stderr
    agg = run_module("lsx.aggregate", str(sweep), "--y", "metrics.test_acc")
    assert agg.returncode == 0, agg.stderr
    assert "3 jobs (2 ok, 1 failed)" in agg.stdout and "failed: 0 (training loss became nan" in agg.stdout
    rows = {r["optimizer.lr"]: r for r in csv.DictReader(open(sweep / "summary.csv"))}
    assert rows["100000000.0"]["status"] == "failed" and rows["100000000.0"]["metrics.test_acc"] == ""
    assert rows["0.01"]["status"] == "ok" and float(rows["0.01"]["metrics.test_acc"]) >= 0


@pytest.mark.slow  # end to end, several seconds each: make test-all
def test_failed_job_does_not_end_a_joblib_multirun(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", "-m", *DIVERGE, "optimizer.lr=1e8,1e-2", "hydra/launcher=joblib_local")
    assert res.returncode == 1, res.stderr[-2000:]
    assert "2 jobs: 1 ok, 1 failed: 0 (training loss became nan" in res.stderr
    sweep = next((out / "multirun").glob("*/*"))
    assert (sweep / "1" / "DONE").exists()


def test_single_run_failure_stays_one_line_and_exit_2(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", *DIVERGE, "optimizer.lr=1e8")
    assert res.returncode == 2
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("lsx: error: training loss became nan")]
    assert "Traceback" not in res.stderr
    (st,) = (out / "runs").glob("*/*/status.json")
    assert json.loads(st.read_text())["status"] == "failed"


def test_a_sweep_where_every_job_failed_is_listed_and_exits_1(tmp_path):
    sweep = tmp_path / "sweep"
    for i, lr in enumerate((1e8, 1e9)):
        _fake_job(sweep, i, [f"optimizer.lr={lr}"], 0.0, lr=lr, status="failed", reason="loss became nan")
    r = run_module("lsx.aggregate", str(sweep), "--y", "metrics.width_mean")
    assert r.returncode == 1 and "no job of the sweep" in r.stderr and r.stdout.count("failed: ") == 2
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [r["optimizer.lr"] for r in rows] == ["100000000.0", "1000000000.0"] and {r["status"] for r in rows} == {"failed"}
