"""Xu et al.: Hessian, taxonomy, surface, theory and mining jobs end to end (the classifier: test_landscape_curves)."""

import json

import numpy as np
import pytest
from conftest import run_module


def _result(out, job):
    d = max((out / "jobs").glob(f"{job}_*"), key=lambda p: (p / "results.json").stat().st_mtime)  # the newest
    return json.loads((d / "results.json").read_text()), d


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_hessian_and_taxonomy_jobs(lsx_dirs):
    cache, out = lsx_dirs
    tiny = ("debug=fast", "trainer.progress_bar=false", "model=mlp", "model.hidden=16")
    r = run_module(
        "lsx.analyze",
        "analysis=hessian",
        *tiny,
        "analysis.k=3",
        "analysis.trace_samples=5",
        "analysis.slq_probes=2",
        "analysis.slq_steps=10",
        "analysis.num_examples=64",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "hessian")
    m = res["metrics"]
    assert m["lambda_max"] >= max(m["top_eigenvalues"]) - 1e-9 and len(m["top_eigenvalues"]) == 3
    assert m["lambda_min"] <= m["lambda_max"] and (d / "hessian_spectrum.png").exists()
    r = run_module(
        "lsx.analyze",
        "analysis=curve_taxonomy",
        *tiny,
        "training.epochs=2",
        "training.checkpoint_epochs=[0,1]",
        "analysis.epoch=1",
        "analysis.side_epoch=0",
        "analysis.num=9",
        "analysis.hessian_examples=64",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "curve_taxonomy")
    m = res["metrics"]
    assert len(m["types_gaussian"]) == 3 and m["type_gaussian"] == m["types_gaussian"][0]
    # the descent kinds at side_epoch (the paper's Fig. 4 epoch), the others at epoch; every curve says which
    # types one grid step or the extremum filter would give; −∇L's window is ± the quadratic step
    assert (m["epoch"], m["side_epoch"]) == (1, 0) and (d / "curves_side.h5").exists()
    assert all(t in alts for t, alts in zip(m["types_gaussian"], m["alt_types_gaussian"]))
    step = m["quadratic_step_neg_gradient"][0]
    assert step > 0 and m["windows_neg_gradient"][0] == pytest.approx(step)
    assert set(
        sum((m[f"types_{k}"] for k in ("gaussian", "neg_gradient", "later_checkpoint", "independent", "pe", "ne")), [])
    ) <= {"v-basin", "v-side", "w-basin", "w-peak", "vvv-basin", "other"}
    # both compared optima, the studied run and its independent partner, carry the loss the analysis measured
    measured = {t["seed"]: t.get("analysis_train_loss") for t in res["training"]}
    assert set(measured) == {0, 1000} and all(v is not None and v > 0 for v in measured.values())
    r = run_module("lsx.analyze", "analysis=hessian", *tiny, "analysis.k=100000")
    assert r.returncode == 2 and "parameter count" in r.stderr


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_surface_from_two_direction_kinds(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module(
        "lsx.analyze",
        "analysis=surface_kinds",
        "debug=fast",
        "trainer.progress_bar=false",
        "model=mlp",
        "model.hidden=16",
        "analysis.x.num=4",
        "analysis.y.num=3",
        "analysis.hessian_examples=64",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "surface_kinds")
    import numpy as np

    assert np.load(d / "surface_grid.npz")["train_loss"].shape == (3, 4)
    r = run_module("lsx.analyze", "analysis=surface_kinds", "debug=fast", "analysis.x_kind=sideways")
    assert r.returncode == 2 and "valid: gaussian" in r.stderr


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_xu_theory_job(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module(
        "lsx.analyze",
        "analysis=xu_theory",
        "debug=fast",
        "trainer.progress_bar=false",
        "model=mlp",
        "model.hidden=16",
        "analysis.num_examples=64",
        "analysis.num_directions=20",
        "analysis.samples=5",
        "analysis.trace_samples=5",
        "analysis.num=5",
        "training.epochs=2",
        "training.checkpoint_epochs=[0,1,2]",
        "analysis.slq_probes=2",
        "analysis.slq_steps=10",
        "analysis.ne_num=11",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "xu_theory")
    m = res["metrics"]
    assert abs(m["cosine_mean"]) < 5 * m["expected_cosine_std"] and (d / "xu_theory.png").exists()
    assert 0.5 < m["cosine_std_ratio"] < 2  # 20 directions: std(cos)·√D ≈ 1
    assert m["spectrum_epochs"] == [1, 2] and len(m["ne_peak_height_by_epoch"]) == 2
    assert all(lo <= hi for lo, hi in zip(m["lambda_min_by_epoch"], m["lambda_max_by_epoch"]))
    assert m["hessian_outlier_ratio"] > 1 and min(m["ne_peak_height_by_epoch"]) >= 0
    assert m["ne_type_first"] == m["ne_types_by_epoch"][:1] and m["ne_type_first"][0] in m["ne_alt_types_first"][0]


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_mining_job_runs_the_papers_algorithms_and_the_named_variants(lsx_dirs):
    cache, out = lsx_dirs
    tiny = (
        "debug=fast",
        "trainer.progress_bar=false",
        "model=mlp",
        "model.hidden=16",
        "analysis=mining",
        "analysis.epochs=2",
        "analysis.steps_per_epoch=5",
        "analysis.num=11",
        "analysis.vvv_gammas=[0.1,0.9]",
        "analysis.vvv_num=31",
        "analysis.legacy_steps=10",
    )
    r = run_module("lsx.analyze", *tiny)
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "mining")
    m = res["metrics"]
    assert (m["w_peak_method"], m["vvv_method"]) == ("paper", "paper")
    assert m["w_peak_type_before"] in ("v-basin", "v-side") and m["w_peak_direction_norm"] > 0  # grew from ε₀ = 0
    assert m["w_peak_success"] == (m["w_peak_type_after"] == "w-peak")
    assert np.load(d / "mining.npz")["w_peak_after"].shape == (11,) and (d / "mining.png").exists()
    # Algorithm 2 once per (α, γ) of the grid: α ∈ {0, 0.1} × the two γ given
    assert m["vvv_settings"] == [[0.0, 0.1], [0.0, 0.9], [0.1, 0.1], [0.1, 0.9]] and len(m["vvv_types"]) == 4
    assert np.load(d / "mining.npz")["vvv_after"].shape == (4, 31) and 0 <= m["vvv_basin_fraction"] <= 1
    r = run_module("lsx.analyze", *tiny, "analysis.w_peak_method=fixed_norm", "analysis.vvv_method=lattice_barrier")
    assert r.returncode == 0, r.stderr[-3000:]
    m = _result(out, "mining")[0]["metrics"]
    assert (m["w_peak_method"], m["vvv_method"]) == ("fixed_norm", "lattice_barrier")
    r = run_module("lsx.analyze", *tiny, "analysis.w_peak_method=none")  # Algorithm 2 only: no w-peak stage or metric
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "mining")
    m = res["metrics"]
    assert m["w_peak_method"] == "none" and "w_peak_type_after" not in m and len(m["vvv_types"]) == 4
    assert "w_peak_after" not in np.load(d / "mining.npz") and not list((d / "stages").glob("w_peak*"))
    r = run_module("lsx.analyze", *tiny, "analysis.vvv_method=algorithm2")
    assert r.returncode == 2 and "valid: paper, lattice_barrier" in r.stderr
    r = run_module("lsx.analyze", *tiny, "analysis.phi_init=zeros")
    assert r.returncode == 2 and "valid: random, independent" in r.stderr


@pytest.mark.slow  # end to end, ~10 s: make test-all (the fast suite stays under 5 min)
def test_taxonomy_defaults_study_the_checkpoint_before_the_final_one(lsx_dirs):
    cache, out = lsx_dirs
    r = run_module(
        "lsx.analyze",
        "analysis=curve_taxonomy",
        "debug=fast",
        "trainer.progress_bar=false",
        "model=mlp",
        "model.hidden=16",
        "analysis.directions=[gaussian,later_checkpoint]",
        "analysis.num=11",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "curve_taxonomy")
    assert res["metrics"]["epoch"] == 0 and "type_later_checkpoint" in res["metrics"]


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_pe_curve_second_difference_matches_its_eigenvalue(lsx_dirs):
    """Unit-norm eigenvector directions on the curve's own examples: the curve is the quadratic model near λ=0."""
    cache, out = lsx_dirs
    r = run_module(
        "lsx.analyze",
        "analysis=curve_taxonomy",
        "debug=fast",
        "trainer.progress_bar=false",
        "model=mlp",
        "model.hidden=16",
        "model.activation=tanh",
        "analysis.directions=[pe,ne]",
        "analysis.num=41",
        "analysis.scale=0.2",
        "analysis.eigen_curves=2",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res, d = _result(out, "curve_taxonomy")
    m = res["metrics"]
    lam_pe, lam_ne = m["eigenvalues_pe"], m["eigenvalues_ne"]
    assert lam_pe[0] >= lam_pe[1] > 0 and lam_ne[0] <= lam_ne[1] < lam_pe[1]
    assert m["curvature_pe"][0] == pytest.approx(lam_pe[0], rel=0.05)
    assert m["curvature_pe"][1] == pytest.approx(lam_pe[1], rel=0.05)
    import h5py

    with h5py.File(d / "curves.h5", "r") as h:
        norms = np.linalg.norm(h["directions"][()], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)  # unit norm in parameter space, not filter-normalized
    r = run_module("lsx.analyze", "analysis=curve_taxonomy", "debug=fast", "analysis.hessian_examples=7")
    assert r.returncode == 2 and "differs from the" in r.stderr
