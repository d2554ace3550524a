"""Aggregation reads a small real multirun (2 learning rates x 2 seeds) from its results files."""

import csv

import pytest
from conftest import run_module


@pytest.mark.slow  # end to end, tens of seconds: make test-all
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


def _job(d, lr, seed, job="tunnel_width", shared=None, results=True, status="ok", paths=True):
    import json

    import yaml

    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"optimizer.lr={lr}", f"seed={seed}"]))
    cfg = {"seed": seed, "optimizer": {"lr": lr}, "analysis": {"job": job}}
    if paths:
        cfg["paths"] = {"output_root": str(d), "cache_dir": str(d / "cache")}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "status.json").write_text(json.dumps({"status": status, **({"reason": "boom"} if status != "ok" else {})}))
    if results:
        res = {
            "job": job,
            "seed": seed,
            "metrics": {"width": lr * 10 + seed},
            "overrides": [f"optimizer.lr={lr}", f"seed={seed}"],
            "job_dir": shared or str(d / "job"),
        }
        (d / "results.json").write_text(json.dumps(res) if results is True else results)
        (d / "DONE").write_text("done\n")


def test_shared_jobs_count_once_and_damaged_files_are_named(tmp_path):
    from lsx.tracking.aggregate import collect

    a, b = tmp_path / "sweepA", tmp_path / "sweepB"
    _job(a / "0", 0.1, 0, shared="/cache/jobs/x")
    _job(a / "1", 0.01, 0)
    _job(b / "0", 0.1, 0, shared="/cache/jobs/x")  # the same cached job, reached by a second sweep
    _job(b / "1", 0.01, 1, results="{not json")
    rows = collect(tmp_path)
    assert len(rows) == 3
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(bad) == 1 and "unreadable" in bad[0]["reason"] and "results.json" in bad[0]["reason"]


def test_failed_job_adds_no_paths_columns_and_job_types_get_their_own_plots(tmp_path):
    from lsx.cli.aggregate import aggregate

    _job(tmp_path / "0", 0.1, 0)
    _job(tmp_path / "1", 0.01, 0)
    _job(tmp_path / "2", 0.1, 0, job="sharpness")
    _job(tmp_path / "3", 0.01, 0, job="sharpness")
    _job(tmp_path / "4", 1.0, 0, results=False, status="failed")
    out = aggregate(tmp_path, ["optimizer.lr"], ["metrics.width"])
    header = open(tmp_path / "summary.csv").readline()
    assert "paths." not in header
    assert sorted(p.name for p in out["plots"]) == [
        "sharpness_width_vs_optimizer_lr.png",
        "tunnel_width_width_vs_optimizer_lr.png",
    ]


def test_a_killed_sweep_lists_the_jobs_that_never_started(tmp_path):
    import yaml

    from lsx.tracking.aggregate import collect

    (tmp_path / "multirun.yaml").write_text(
        yaml.safe_dump(
            {"hydra": {"overrides": {"task": ["optimizer.lr=0.1,0.01", "seed=0,1"]}, "sweep": {"subdir": "${hydra.job.num}"}}}
        )
    )
    _job(tmp_path / "0", 0.1, 0)
    _job(tmp_path / "1", 0.1, 1)
    rows = collect(tmp_path)
    missing = [r for r in rows if r["status"] == "not started"]
    assert len(rows) == 4 and len(missing) == 2
    assert {r["optimizer.lr"] for r in missing} == {0.01} and "seed=1" in missing[-1]["reason"]


def test_a_width_sweep_of_barrier_jobs_gets_every_variant_on_shared_axes(tmp_path):
    """``barriers_vs_model_width.png``: per variant a thin line per pair of optima and the median over pairs."""
    import json

    import yaml

    from lsx.cli.aggregate import aggregate
    from lsx.plots.common import missing_labels
    from lsx.plots.permutation import barrier_points, barrier_sweep_figure
    from lsx.tracking.aggregate import collect, swept_keys

    widths = (0.25, 1.0, 4.0)
    naive = {"0-1": (2.0, 1.0, 0.5), "2-3": (4.0, 3.0, 1.5)}  # falls with width; weight matching: a tenth
    for i, w in enumerate(widths):
        d = tmp_path / str(i)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.width={w}"]))
        cfg = {"seed": 0, "model": {"width": w}, "analysis": {"job": "permutation_barrier"}}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / "status.json").write_text(json.dumps({"status": "ok"}))
        pairs = [
            {"pair": p, "variant": v, "barrier_train_loss": b[i] * (1 if v == "naive" else 0.1), "barrier_test_error": 0.1}
            for p, b in naive.items()
            for v in ("naive", "weight")
        ]
        res = {"job": "permutation_barrier", "seed": 0, "metrics": {"n_pairs": 2, "pairs": pairs}, "job_dir": str(d / "job")}
        (d / "results.json").write_text(json.dumps(res))
        (d / "DONE").write_text("done\n")
    rows = collect(tmp_path)
    points = barrier_points(tmp_path, rows, "model.width", swept_keys(rows))
    assert len(points) == 3 * 2 * 2
    fig = barrier_sweep_figure(points, "model.width")
    assert not missing_labels(fig)
    train_loss = fig.axes[0]
    medians = {line.get_label(): list(line.get_ydata()) for line in train_loss.get_lines() if "pair" in line.get_label()}
    assert medians["naive (median of 2 pairs)"] == pytest.approx([3.0, 2.0, 1.0])
    assert medians["weight (median of 2 pairs)"] == pytest.approx([0.3, 0.2, 0.1])
    assert len(train_loss.get_lines()) == 2 * (2 + 1) + 1  # per variant: 2 pair lines and the median; the zero line
    out = aggregate(tmp_path)
    assert tmp_path / "barriers_vs_model_width.png" in out["plots"]
