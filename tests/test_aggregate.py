"""Aggregation reads a small real multirun (2 learning rates x 2 seeds) from its results files."""
import csv

from conftest import run_module


def test_aggregate_real_multirun(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", "-m", "seed=0,1", "optimizer.lr=0.001,0.01", "debug=fast")
    assert res.returncode == 0, res.stderr[-2000:]
    sweep = next((out / "multirun").glob("*/*"))
    agg = run_module("lsx.aggregate", str(sweep), "--y", "metrics.test_acc")
    assert agg.returncode == 0, agg.stderr
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 4
    assert {r["optimizer.lr"] for r in rows} == {"0.001", "0.01"}
    assert all(0.0 <= float(r["metrics.test_acc"]) <= 1.0 for r in rows)
    assert (sweep / "test_acc_vs_optimizer_lr.png").exists()
    assert not (sweep / "test_acc_vs_seed.png").exists()


def test_aggregate_empty_dir_is_a_clear_error(tmp_path):
    res = run_module("lsx.aggregate", str(tmp_path))
    assert res.returncode == 2 and "no finished jobs" in res.stderr
