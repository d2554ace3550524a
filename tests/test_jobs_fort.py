"""Fort & Jastrzebski jobs end to end at tiny scale, their bad inputs, and every Fort preset's claims."""

import json

import pytest
from conftest import run_module

TINY = ("debug=fast", "trainer.progress_bar=false")
FORT_PRESETS = ("fort_fig3", "fort_fig4", "fort_fig5", "fort_fig5_batch", "fort_fig5_dropout", "fort_fig5_l2", "fort_fig6")
# per preset: overrides that make its reproduce grid tiny (the statistics still see ≥ 2 units)
TINY_REPRO = {
    "fort_fig3": [
        "training.epochs=1",
        "analysis.steps=3",
        "analysis.num_segments=5",
        "analysis.short_directions.k_max=4",
        "analysis.hessian_examples=64",
        "data.landscape_test=64",
        "data.landscape_train=64",
    ],
    "fort_fig4": [
        "training.epochs=1",
        "analysis.steps=3",
        "analysis.m=2",
        "analysis.num_samples=1",
        "analysis.short_directions.k_max=4",
        "analysis.hessian_examples=64",
        "data.landscape_test=64",
        "data.landscape_train=64",
    ],
    "fort_fig6": [
        "training.epochs=4",
        "scheduler.cycle_epochs=1",
        "analysis.burn_in_epochs=1",
        "analysis.num_snapshots=2",
        "analysis.max_lrs=[0.001,0.01,0.1]",
    ],
    **{
        p: ["training.epochs=2", "analysis.num_directions=2", "data.landscape_train=128"]
        for p in ("fort_fig5", "fort_fig5_batch", "fort_fig5_dropout", "fort_fig5_l2")
    },
}


def _result(out, job):
    d = sorted((out / "jobs").glob(f"{job}_*"))[-1]
    return json.loads((d / "results.json").read_text()), d


@pytest.mark.slow  # end to end, several seconds each: make test-all
def test_tunnel_width_job_reports_angle_distance_and_norm(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "analysis=tunnel_width", *TINY, "analysis.num_directions=3")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "tunnel_width")
    m = res["metrics"]
    import math

    assert m["angle"] == "arctan" and m["threshold_mode"] == "relative_delta"
    assert m["threshold"] == pytest.approx(m["base_train_loss"] + 1.0)
    assert m["width_mean"] == pytest.approx(
        math.atan(m["distance_mean"] / m["theta_norm"]), rel=0.2
    )  # mean of atan ≈ atan of mean
    assert (d / "tunnel_widths.png").exists()


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_radial_tunnels_and_swa_jobs_run(lsx_dirs):
    cache, out = lsx_dirs
    r1 = run_module(
        "lsx.analyze",
        "analysis=radial_tunnels",
        *TINY,
        "training.epochs=2",
        "training.checkpoint_epochs=[0,1]",
        "analysis.epochs=[1,2]",
        "analysis.num=5",
    )
    assert r1.returncode == 0, r1.stderr[-3000:]
    res, d = _result(out, "radial_tunnels")
    assert (d / "radial_tunnels.png").exists() and res["metrics"]["epoch2_radius"] > 0
    m = res["metrics"]
    assert m["epochs"] == [1, 2] and len(m["radius_by_epoch"]) == len(m["optima_train_loss_by_epoch"]) == 2
    assert m["pair_distance_by_epoch"] == [m["epoch1_mean_pair_distance"], m["epoch2_mean_pair_distance"]]
    assert all(r > 0 for r in m["radius_by_epoch"]) and all(v > 0 for v in m["optima_train_loss_by_epoch"])
    # the angle between the optima is the distance's information beyond the radius: d² = r_i² + r_j² − 2 r_i r_j cos
    assert len(m["pair_cosine_by_epoch"]) == 2 and all(-1 <= c <= 1 for c in m["pair_cosine_by_epoch"])
    r2 = run_module(
        "lsx.analyze",
        "analysis=swa_ensemble",
        "scheduler=cyclic",
        "scheduler.cycle_epochs=1",
        *TINY,
        "training.epochs=4",
        "analysis.max_lrs=[0.001,0.01]",
        "analysis.num_snapshots=2",
        "analysis.burn_in_epochs=1",
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    res, d = _result(out, "swa_ensemble")
    m = res["metrics"]
    assert m["snapshot_epochs"] == [3, 4] and m["max_lrs"] == [0.001, 0.01]
    assert len(m["advantage_nll"]) == 2 and m["advantage_nll"][1] == pytest.approx(m["swa_nll"][1] - m["ensemble_nll"][1])
    assert (d / "swa_vs_ensemble.png").exists()


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_connector_jobs_write_the_claims_metrics(lsx_dirs):
    """Two-block at equal lag, label change by half, counts at every threshold, the hull's barrier ratio."""
    cache, out = lsx_dirs
    tiny = (
        *TINY,
        "data.landscape_train=64",
        "data.landscape_test=64",
        "analysis.hessian_examples=64",
        "analysis.short_directions.k_max=4",
        "analysis.batch_size=32",
        "analysis.steps=5",
    )
    r = run_module("lsx.analyze", "analysis=connector", *tiny, "analysis.num_segments=5")
    assert r.returncode == 0, r.stderr[-3000:]
    m = _result(out, "connector")[0]["metrics"]
    lags = m["two_block_lags"]
    assert lags and len(m["two_block_within_by_lag"]) == len(m["two_block_across_by_lag"]) == len(lags)
    assert "two_block_relative_contrast" in m and "label_change_linear_one_half_share" in m
    assert m["short_directions_thresholds"] == [0.5, 0.2] and len(m["short_directions_gain_by_threshold"]) == 2
    assert m["short_directions_gain_by_threshold"][0] == pytest.approx(m["short_directions_gain"])
    r = run_module("lsx.analyze", "analysis=mconnector", *tiny, "optima.seeds=[0,1,2]", "analysis.m=2", "analysis.num_samples=1")
    assert r.returncode == 0, r.stderr[-3000:]
    m = _result(out, "mconnector")[0]["metrics"]
    assert [len(row) for row in m["short_directions_vs_m_by_threshold"]] == [2, 2]
    assert m["short_directions_vs_m_by_threshold"][0] == m["short_directions_vs_m"]
    assert m["hull_barrier_after"] == pytest.approx(m["max_loss_after"] - m["optima_mean_loss"])
    r = run_module(
        "lsx.analyze",
        "analysis=mconnector",
        *tiny,
        "optima.seeds=[0,1,2]",
        "analysis.m=2",
        "analysis.short_directions.robustness_thresholds=[0]",
    )
    assert r.returncode == 2 and "every threshold must be > 0" in r.stderr


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_fort_bad_inputs_are_clear_errors(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module(
        "lsx.analyze", "analysis=tunnel_width", *TINY, "analysis.threshold.mode=absolute", "analysis.threshold.value=0.01"
    )
    assert r.returncode == 2 and "not above the loss at the optimum" in r.stderr
    r = run_module(
        "lsx.analyze", "analysis=swa_ensemble", "scheduler=cyclic", "scheduler.cycle_epochs=1", *TINY, "analysis.num_snapshots=0"
    )
    assert r.returncode == 2 and ">= 1" in r.stderr
    r = run_module("lsx.analyze", "analysis=swa_ensemble", "scheduler=cyclic", "scheduler.cycle_epochs=5", *TINY)
    assert r.returncode == 2 and "longer than training" in r.stderr
    r = run_module(
        "lsx.analyze",
        "analysis=swa_ensemble",
        "scheduler=cyclic",
        "scheduler.cycle_epochs=1",
        *TINY,
        "training.epochs=3",
        "analysis.num_snapshots=2",
        "analysis.burn_in_epochs=2",
    )
    assert r.returncode == 2 and "after the burn-in of 2 epochs" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("preset", FORT_PRESETS)
def test_each_fort_preset_claim_evaluates_to_a_verdict_on_a_tiny_run(lsx_dirs, preset):
    from lsx.cli.reproduce import reproduce

    report = reproduce([preset, "trainer.progress_bar=false", *TINY_REPRO[preset]], echo=lambda *a, **k: None)
    (section,) = report["presets"]
    assert section["n_failed"] == 0, section["jobs"]
    assert section["claims"] and all(
        c["verdict"] in ("reproduced", "not reproduced", "unstable", "inconclusive") for c in section["claims"]
    )
    assert all(d["estimate"] is not None for c in section["claims"] for d in c["sets"].values()), [
        c["reason"] for c in section["claims"]
    ]
    if preset == "fort_fig5_l2":  # the 4-panel Fig. 5 figure is drawn (sibling panels empty in this isolated run)
        assert section["figures"] and all(f.get("path") for f in section["figures"]), section["figures"]
