"""Fort & Jastrzebski connectors and the toy wedges, as jobs (the core is tested in test_landscape_*)."""

import json
from pathlib import Path

import pytest
import torch
from conftest import run_module

TINY = (
    "debug=fast",
    "trainer.progress_bar=false",
    "data.landscape_train=64",
    "data.landscape_test=64",
    "analysis.hessian_examples=64",
    "analysis.short_directions.k_max=3",
    "analysis.batch_size=32",
)


def _result(out, job):
    d = sorted((out / "jobs").glob(f"{job}_*"))[-1]
    return json.loads((d / "results.json").read_text()), d


def test_toy_wedges_job_shows_the_threshold(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module(
        "lsx.analyze",
        "analysis=toy_wedges",
        "analysis.pairs=[[20,5]]",
        "analysis.trials=4",
        "analysis.dim_offsets=[-6,6]",
        "analysis.steps=400",
        "analysis.connector_steps=100",
        "analysis.radial_directions=4",
        env={"OMP_NUM_THREADS": "2"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "toy_wedges")
    assert res["torch_threads"] == 1 and res["torch_threads_process"] == 2  # the count it computed at
    m = res["metrics"]
    assert m["D20_n5_success_below"] == 0.0 and m["D20_n5_success_above"] == 1.0
    assert m["tunnel_max_loss_connector"] < 0.1 * m["tunnel_max_loss_linear"]
    assert (d / "hyperplane_success.png").exists()


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_connector_and_mconnector_jobs(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "analysis=connector", *TINY, "analysis.num_segments=3", "analysis.steps=5")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "connector")
    m = res["metrics"]
    assert m["max_constraint_residual"] < 1e-3 and len(m["short_directions_along_path"]) == 4
    assert len(m["short_directions_loss"]) == 4 and m["short_threshold"] == pytest.approx(0.5 * m["reference_top_eigenvalue"])
    assert m["eval_split"] == "heldout" and m["eval_examples_in_optimization_data"] == 0
    assert 0.0 <= m["optima_label_disagreement"] <= 1.0 and "barrier_ratio" in m
    assert (d / "connector.png").exists()
    r = run_module(
        "lsx.analyze",
        "analysis=mconnector",
        *TINY,
        "optima.seeds=[0,1,2]",
        "analysis.m=2",
        "analysis.steps=5",
        "analysis.num_samples=1",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "mconnector")
    m = res["metrics"]
    assert m["m"] == 2 and len(m["short_directions_vs_m"]) == 2 == len(m["short_directions_mid_loss"])
    assert m["short_directions_m"] == [1, 2] and m["eval_examples_in_optimization_data"] == 0


def test_heldout_evaluation_data_is_disjoint_from_the_optimization_data(compose):
    """Connector nodes are optimized on the training split; their losses and Hessians use examples
    that never occur in it (checked row by row), while eval_split=train overlaps it entirely."""
    from lsx.jobs.base import JobContext
    from lsx.jobs.connector import optimization_and_evaluation_data, shared_examples

    for data in ("digits", "mnist1d"):
        cfg = compose("analysis=connector", f"data={data}", "data.landscape_test=200", "data.landscape_train=200")
        (tx, _), (ex, _) = optimization_and_evaluation_data(JobContext(cfg, _tmp(cfg), False))
        assert len(ex) == 200 and shared_examples(tx, ex) == 0
        cfg["analysis"]["eval_split"] = "train"
        (tx, _), (ex, _) = optimization_and_evaluation_data(JobContext(cfg, _tmp(cfg), False))
        assert shared_examples(tx, ex) == len(ex) == 200
    assert shared_examples(torch.arange(12.0).reshape(4, 3), torch.tensor([[3.0, 4.0, 5.0], [0.0, 0.0, 1.0]])) == 1
    cfg["analysis"]["eval_split"] = "val"
    with pytest.raises(ValueError, match="valid: heldout, train"):
        optimization_and_evaluation_data(JobContext(cfg, _tmp(cfg), False))


def _tmp(cfg):
    return Path(cfg["paths"]["output_root"]) / "ctx"


def test_connector_bad_inputs(lsx_dirs):
    r = run_module("lsx.analyze", "analysis=mconnector", *TINY, "optima.seeds=[0,1]", "analysis.m=3")
    assert r.returncode == 2 and "needs m+1=4 optima" in r.stderr
    assert not (lsx_dirs[0] / "train").exists()  # refused before anything is trained
