"""End-to-end landscape jobs (Li et al.) at tiny scale, through the real entry point."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module

TINY = ("debug=fast", "trainer.progress_bar=false")


def _results(stdout: str, out_root: Path, job: str) -> dict:
    dirs = sorted((out_root / "jobs").glob(f"{job}_*"))
    assert dirs, stdout
    return json.loads((dirs[-1] / "results.json").read_text()) | {"_dir": dirs[-1]}


def test_quickstart_demo_end_to_end_and_rerun_is_noop(lsx_dirs):
    cache, out = lsx_dirs
    args = ("experiment=quickstart", *TINY, "analysis.x.num=5", "analysis.y.num=4")
    res = run_module("lsx.analyze", *args)
    assert res.returncode == 0, res.stderr[-3000:]
    r = _results(res.stdout, out, "surface2d")
    d = r["_dir"]
    for key in ("job", "experiment", "seed", "code_version", "metrics", "artifacts"):
        assert key in r
    assert r["experiment"] == "quickstart" and r["seed"] == 0
    for rel in r["artifacts"].values():
        assert (d / rel).exists(), rel
    grid = np.load(d / "surface_grid.npz")
    assert grid["train_loss"].shape == (4, 5)  # values[i_y, i_x]: non-square grids keep their axes
    assert np.isfinite(grid["train_loss"]).all()
    # centre of the grid is the trained optimum: its loss is the minimum of the surface (tiny training, so loose)
    assert r["metrics"]["center_train_loss"] <= r["metrics"]["max_train_loss"]
    assert (d / "DONE").exists() and (d / "config.yaml").exists()
    mtime = (d / "results.json").stat().st_mtime
    # a finished job is a no-op found in the cache, without importing its module or the plotting stack
    again = run_module("lsx.analyze", *args, env={"PYTHONPROFILEIMPORTTIME": "1"})  # every import listed on stderr
    assert again.returncode == 0 and (d / "results.json").stat().st_mtime == mtime
    assert "job already finished" in again.stderr + again.stdout
    imported = {ln.split("|")[-1].strip() for ln in again.stderr.splitlines() if ln.startswith("import time:")}
    assert "lsx.jobs.surface" not in imported and "matplotlib" not in imported


@pytest.mark.parametrize(
    "job, extra, artifact",
    [
        ("curves1d", ["analysis.num_directions=2", "analysis.range.num=7"], "curves_train_loss.png"),
        pytest.param("interpolation", ["analysis.alpha.num=5"], "interpolation.png", marks=pytest.mark.slow),
        pytest.param("plane", ["analysis.num=4"], "plane_contour.png", marks=pytest.mark.slow),
        pytest.param(
            "pca_trajectory",
            ["training.epochs=3", "training.checkpoint_every=1", "analysis.num=4"],
            "pca_trajectory.png",
            marks=pytest.mark.slow,
        ),
        pytest.param("weight_histograms", [], "weight_histograms.png", marks=pytest.mark.slow),
    ],
)
def test_li_jobs_run(lsx_dirs, job, extra, artifact):
    cache, out = lsx_dirs
    res = run_module("lsx.analyze", f"analysis={job}", *TINY, *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    r = _results(res.stdout, out, job)
    assert (r["_dir"] / artifact).exists()


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_pca_trajectory_compares_random_and_pca_planes(lsx_dirs):
    """Li Sec. 7.1: the job reports the share of the path's variance in a random plane next to the PCA plane's."""
    cache, out = lsx_dirs
    res = run_module(
        "lsx.analyze", "analysis=pca_trajectory", *TINY, "training.epochs=4", "training.checkpoint_every=1", "analysis.num=3"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    m = _results(res.stdout, out, "pca_trajectory")["metrics"]
    assert m["random_directions"] == 2 and m["checkpoints"] >= 4
    assert 0 <= m["random_variance"] < m["pca_variance_k"] <= 1 + 1e-9
    assert 0 < m["first_last_variance"] <= m["explained_variance_ratio"][0] + 1e-9  # PC1 is the best single direction
    assert m["pca_over_random_log10"] == pytest.approx(np.log10(m["pca_variance_k"] / m["random_variance"]))


def test_bad_grid_is_one_clear_error(lsx_dirs):
    res = run_module("lsx.analyze", "analysis=surface2d", *TINY, "analysis.x.num=0")
    assert res.returncode == 2
    assert "analysis.x" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_sharpness_job_reports_filter_normalized_sharpness_and_lambda_max(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module(
        "lsx.analyze",
        "analysis=sharpness",
        *TINY,
        "analysis.direction_seeds=[1,2,3]",
        "analysis.curve.num=5",
        "analysis.hessian.num_examples=32",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    r = _results(res.stdout, out, "sharpness")
    m = r["metrics"]
    assert len(m["sharpness_rises"]) == 3 and m["sharpness"] == pytest.approx(np.mean(m["sharpness_rises"]))
    assert m["lambda_max"] > 0 and m["weight_norm"] > 0
    curves = np.load(r["_dir"] / "sharpness_curves.npz")
    assert curves["train_loss"].shape == (3, 5) and np.isfinite(curves["train_loss"]).all()


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_surface_convexity_map_on_a_strided_grid(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module(
        "lsx.analyze",
        "analysis=surface2d",
        *TINY,
        "analysis.x.num=5",
        "analysis.y.num=3",
        "analysis.convexity.enabled=true",
        "analysis.convexity.hessian_every=2",
        "analysis.convexity.num_examples=32",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    r = _results(res.stdout, out, "surface2d")
    m = r["metrics"]
    d = np.load(r["_dir"] / "convexity.npz")
    mapped = np.isfinite(d["ratio"])
    assert mapped.sum() == m["convexity_points"] == 3 * 1  # columns 0, 2, 4 of the centre row (rows 0 and 2 are 1 away)
    assert (d["lambda_max"][mapped] >= d["lambda_min"][mapped]).all()
    assert 0 <= m["convexity_nonconvex_fraction"] <= 1 and (r["_dir"] / "convexity_map.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("depth", ["resnet20", "resnet32"])
def test_li_fig6_cpu_noshort_nets_reach_their_target_train_loss(lsx_dirs, depth):
    """Li Fig. 6 compares trained nets only: the cpu preset's no-shortcut nets must actually fit."""
    from conftest import ROOT

    if "target_train_loss" not in (ROOT / "conf" / "config.yaml").read_text():
        pytest.skip("training.target_train_loss (the claims framework's stop rule) is not in conf/config.yaml yet")
    cache, out = lsx_dirs
    res = run_module(
        "lsx.train",
        "experiment=li_fig6",
        "scale=cpu",
        f"model={depth}",
        "model.shortcut=false",
        "training.target_train_loss=0.05",
        "logger=none",
        "trainer.progress_bar=false",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summaries = list((cache / "train").glob(f"{depth}_digits_*/summary.json"))
    assert len(summaries) == 1
    s = json.loads(summaries[0].read_text())
    assert s["stopped_by"] == "target" and s["metrics"]["train_loss"] <= 0.1, s
