"""Xu et al.: curve classification on analytic curves; Hessian and taxonomy jobs end to end."""
import json

import numpy as np
import pytest

from conftest import run_module
from lsx.landscape.curves import classify_curve
from lsx.landscape.stationary import count_stationary_points

LAM = np.linspace(-1, 1, 41)


@pytest.mark.parametrize(
    "y, kind",
    [
        (LAM**2, "v-basin"),
        (LAM + 2, "v-side"),
        ((LAM**2 - 0.25) ** 2, "w-peak"),                      # the point sits on the peak between two basins
        ((LAM - 0.1) ** 2 * (LAM + 0.7) ** 2, "w-basin"),  # two basins, the point inside one
        (np.cos(12 * LAM) + 0.2 * LAM**2, "vvv-basin"),
        (-(LAM**2), "w-peak"),                                 # basins beyond the window's ends
        (-((LAM - 0.8) ** 2), "other"),                        # a peak, but not at the point
    ],
)
def test_classifier_on_analytic_curves(y, kind):
    assert classify_curve(LAM, y) == kind


def test_noise_on_a_flat_bottom_is_not_a_basin_but_strict_counting_sees_it():
    y = LAM**4 + 1e-5 * (-1.0) ** np.arange(len(LAM))
    assert classify_curve(LAM, y) == "v-basin"
    assert count_stationary_points(y) > 1
    with pytest.raises(ValueError, match="same length"):
        classify_curve(LAM, y[:-1])


def _result(out, job):
    d = sorted((out / "jobs").glob(f"{job}_*"))[-1]
    return json.loads((d / "results.json").read_text()), d


def test_hessian_and_taxonomy_jobs(lsx_dirs):
    cache, out = lsx_dirs
    tiny = ("debug=fast", "trainer.progress_bar=false", "model=mlp", "model.hidden=16")
    r = run_module("lsx.analyze", "analysis=hessian", *tiny, "analysis.k=3", "analysis.trace_samples=5",
                   "analysis.slq_probes=2", "analysis.slq_steps=10", "analysis.num_examples=64")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "hessian")
    m = res["metrics"]
    assert m["lambda_max"] >= max(m["top_eigenvalues"]) - 1e-9 and len(m["top_eigenvalues"]) == 3
    assert m["lambda_min"] <= m["lambda_max"] and (d / "hessian_spectrum.png").exists()
    r = run_module("lsx.analyze", "analysis=curve_taxonomy", *tiny, "training.epochs=2", "training.checkpoint_epochs=[0,1]",
                   "analysis.epoch=1", "analysis.num=9", "analysis.hessian_examples=64")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "curve_taxonomy")
    assert set(res["metrics"]["type_gaussian"].split()) <= {"v-basin", "v-side", "w-basin", "w-peak", "vvv-basin", "other"}
    r = run_module("lsx.analyze", "analysis=hessian", *tiny, "analysis.k=100000")
    assert r.returncode == 2 and "parameter count" in r.stderr


def test_surface_from_two_direction_kinds(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "analysis=surface_kinds", "debug=fast", "trainer.progress_bar=false", "model=mlp",
                   "model.hidden=16", "analysis.x.num=4", "analysis.y.num=3", "analysis.hessian_examples=64")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "surface_kinds")
    import numpy as np

    assert np.load(d / "surface_grid.npz")["train_loss"].shape == (3, 4)
    r = run_module("lsx.analyze", "analysis=surface_kinds", "debug=fast", "analysis.x_kind=sideways")
    assert r.returncode == 2 and "valid: gaussian" in r.stderr


def test_xu_theory_job(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "analysis=xu_theory", "debug=fast", "trainer.progress_bar=false", "model=mlp",
                   "model.hidden=16", "analysis.num_examples=64", "analysis.num_directions=20", "analysis.samples=5",
                   "analysis.trace_samples=5", "analysis.num=5")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "xu_theory")
    m = res["metrics"]
    assert abs(m["cosine_mean"]) < 5 * m["expected_cosine_std"] and (d / "xu_theory.png").exists()


def test_mining_preset_finds_both_shapes_on_the_cpu_mlp(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "experiment=xu_taxonomy", "scale=cpu", "analysis=mining", "trainer.progress_bar=false")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "mining")
    m = res["metrics"]
    assert m["w_peak_type_before"] == "v-basin" and m["w_peak_success"]
    assert m["vvv_basin_success"]
    assert (d / "mining.png").exists() and (d / "mining.npz").exists()


def test_taxonomy_defaults_study_the_checkpoint_before_the_final_one(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module("lsx.analyze", "analysis=curve_taxonomy", "debug=fast", "trainer.progress_bar=false", "model=mlp",
                   "model.hidden=16", "analysis.directions=[gaussian,later_checkpoint]", "analysis.num=11")
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "curve_taxonomy")
    assert res["metrics"]["epoch"] == 0 and "type_later_checkpoint" in res["metrics"]
