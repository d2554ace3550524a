"""Parameter subsets (analysis.params), the per-block Hessian table (analysis.blocks) and Hessians of configured losses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.curvature.blocks import blocks_curvature, shared_probe_traces, table_summary
from lsx.landscape.curvature.hessian import exact_hessian, hutchinson_trace, hvp_function, top_eigenpairs
from lsx.landscape.engine.flat import FlatParams, functional_loss, functional_model_loss
from lsx.landscape.engine.subset import block_index, param_blocks, select_params, subset_loss
from lsx.landscape.surfaces.directions import random_direction

TINY = ("debug=fast", "model=mlp", "model.hidden=6", "data.landscape_train=32", "data.landscape_test=32")


def _mlp_loss(seed: int = 0):
    """A 2-block float64 MLP (blocks ``0`` and ``2``) and its cross-entropy on a fixed batch."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double().eval()
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    flat = FlatParams(model)
    return model, flat, functional_loss(model, flat, [(x, y)]), (x, y)


def _columns(hvp, n: int, dtype) -> torch.Tensor:
    """A matrix assembled column by column from its products with the unit vectors."""
    return torch.stack([hvp(torch.eye(n, dtype=dtype)[i]) for i in range(n)], dim=1)


def test_subset_hessian_is_the_block_of_the_exact_hessian():
    _, flat, f, _ = _mlp_loss()
    theta = flat.get()
    sub = select_params(flat, include=["0.weight", "2.*"], exclude=["2.weight"])  # not contiguous in the layout
    assert sub.names == ("0.weight", "2.bias") and sub.num_params == 20 + 3
    idx = sub.index
    f_s, theta_s = subset_loss(f, theta, idx)
    block = _columns(hvp_function(f_s, theta_s), len(idx), theta.dtype)
    full = exact_hessian(f, theta)
    expected = full[idx][:, idx]
    assert torch.allclose(block, expected, atol=1e-10, rtol=1e-8)
    assert not torch.allclose(block, full[: len(idx), : len(idx)], atol=1e-6)  # a different block would not do
    top = top_eigenpairs(f_s, theta_s, 1, "LA")
    assert top.values[0] == pytest.approx(float(torch.linalg.eigvalsh(expected)[-1]), rel=1e-5)


def test_subset_direction_is_zero_outside_and_unchanged_inside():
    _, flat, _, _ = _mlp_loss()
    theta = flat.get()
    sub = select_params(flat, include=["2.*"])
    full = random_direction(flat, theta, 7, "filter", "none")
    part = random_direction(flat, theta, 7, "filter", "none", mask=sub.mask)
    assert torch.all(part[~sub.mask] == 0) and torch.allclose(part[sub.mask], full[sub.mask])
    # model normalization within the subset: ‖d_S‖ = ‖θ_S‖
    d = random_direction(flat, theta, 7, "model", "none", mask=sub.mask)
    assert float(d.norm()) == pytest.approx(float(theta[sub.mask].norm()), rel=1e-9)


def test_tied_weight_is_one_tensor_selected_by_either_name():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.mid = nn.Linear(3, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.emb.weight

    flat = FlatParams(Tied())
    assert [e.name for e in flat.entries] == ["emb.weight", "mid.weight", "mid.bias"]
    sub = select_params(flat, include=["head.*"])  # the tied head is the embedding: counted once
    assert sub.names == ("emb.weight",) and sub.num_params == 15
    assert select_params(flat, exclude=["head.weight"]).names == ("mid.weight", "mid.bias")


def test_globs_that_select_nothing_are_one_line():
    _, flat, _, _ = _mlp_loss()
    with pytest.raises(ValueError) as err:
        select_params(flat, include=["layer9.*"])
    msg = str(err.value)
    assert "\n" not in msg and "layer9.*" in msg and "0.weight" in msg and "2.bias" in msg
    with pytest.raises(ValueError, match="exclude=.*select no parameter"):
        select_params(flat, include=["0.*"], exclude=["0.*"])
    with pytest.raises(ValueError, match=r"analysis.params.include must be a list of glob strings"):
        select_params(flat, include=[3])
    with pytest.raises(ValueError, match=r"glob\(s\) \['7.\*'\] match no"):
        param_blocks(flat, ["0.*", "7.*"])


def test_config_check_refuses_bad_params_before_anything_runs(compose):
    from lsx.cli.validate import validate_config

    with pytest.raises(ValueError, match=r"analysis.params.include must be a list of glob strings"):
        validate_config(compose("analysis=surface2d", "analysis.params.include=[1]"))
    with pytest.raises(ValueError, match="not supported by analysis=pca_trajectory"):
        validate_config(compose("analysis=pca_trajectory", "+analysis.params={include: ['1.*']}"))
    with pytest.raises(ValueError, match="analysis.blocks='depth'; valid: depth<N>"):
        validate_config(compose("analysis=hessian", "analysis.blocks=depth"))
    validate_config(compose("analysis=hessian", "analysis.blocks=depth1", "analysis.params.exclude=['*.bias']"))


def test_globs_matching_no_name_of_the_model_stop_the_job_before_training(compose, lsx_dirs):
    from lsx.cli.analyze import run_analysis

    cache, out = lsx_dirs
    c = compose("analysis=surface2d", *TINY, "analysis.params.include=[features.*]")
    with pytest.raises(ValueError, match=r"include=\['features.\*'\].*select no parameter.*valid names.*1.weight"):
        run_analysis(c, out / "run", progress=False)
    assert not list(cache.rglob("*.pt")), "nothing may train before the subset is checked"


def test_block_table_matches_the_diagonal_blocks_of_the_exact_hessian():
    _, flat, f, _ = _mlp_loss(1)
    theta = flat.get()
    groups = param_blocks(flat, "depth1")
    assert groups == {"0": ["0.weight", "0.bias"], "2": ["2.weight", "2.bias"]}
    blocks = {n: (block_index(flat, names), len(names)) for n, names in groups.items()}
    rows = blocks_curvature(f, theta, blocks, trace_samples=64)  # both blocks ≤ 64 parameters: exact traces
    full = exact_hessian(f, theta)
    for r in rows:
        idx = blocks[r.block][0]
        h = full[idx][:, idx]
        assert r.trace_method == "exact" and r.trace == pytest.approx(float(torch.trace(h)), rel=1e-9, abs=1e-12)
        assert r.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(h)[-1]), rel=1e-5)
        assert r.num_params == len(idx)
    s = table_summary(rows, flat.num_params)
    assert s["blocks_cover_all"] and s["blocks_trace_sum"] == pytest.approx(float(torch.trace(full)), rel=1e-9)
    # Hutchinson on a block larger than the probe count: within a few standard errors of the exact trace
    (r0,) = blocks_curvature(f, theta, {"0": blocks["0"]}, trace_samples=12, seed=3)
    exact0 = float(torch.trace(full[blocks["0"][0]][:, blocks["0"][0]]))
    assert r0.trace_method == "hutchinson" and abs(r0.trace - exact0) <= 5 * r0.trace_stderr + 1e-9
    # shared probes: blocks that partition θ sum to the whole-model Hutchinson estimate from the same probes,
    # and with many probes each block's estimate is within a few standard errors of its exact trace
    idx = [blocks["0"][0], blocks["2"][0]]
    few = shared_probe_traces(f, theta, idx, 8, seed=5)
    assert sum(t for t, _ in few) == pytest.approx(hutchinson_trace(f, theta, 8, seed=5)[0], rel=1e-9)
    for (t, se), i in zip(shared_probe_traces(f, theta, idx, 400, seed=1), idx):
        assert se > 0 and abs(t - float(torch.trace(full[i][:, i]))) <= 5 * se
    # within a subset, the blocks partition the selection; a glob list leaves the rest out
    sub = select_params(flat, exclude=["*.bias"])
    assert param_blocks(flat, "depth1", sub) == {"0": ["0.weight"], "2": ["2.weight"]}
    assert param_blocks(flat, ["2.*"]) == {"2.*": ["2.weight", "2.bias"]}


def test_configured_loss_gives_the_same_function_and_hessian_as_cross_entropy():
    from lsx.training.losses import CrossEntropy, NextTokenCrossEntropy

    model, flat, f, (x, y) = _mlp_loss(2)
    theta = flat.get()
    g = functional_model_loss(model, flat, [(x[:10], y[:10]), (x[10:], y[10:])], CrossEntropy())  # chunks weighted
    assert float(g(theta)) == pytest.approx(float(f(theta)), rel=1e-12)
    v = torch.randn(flat.num_params, dtype=torch.float64)
    assert torch.allclose(hvp_function(g, theta)(v), hvp_function(f, theta)(v), atol=1e-10)
    # a token loss: the mean over all tokens that count (-100 ignored), whatever the chunk sizes
    torch.manual_seed(0)
    lm = nn.Sequential(nn.Embedding(6, 4), nn.Linear(4, 6)).double()
    tok = torch.randint(0, 6, (5, 7))
    tgt = tok.roll(-1, 1)
    tgt[:, -1] = -100
    tgt[0, :3] = -100
    fl = FlatParams(lm)
    h = functional_model_loss(lm, fl, [(tok[:2], tgt[:2]), (tok[2:], tgt[2:])], NextTokenCrossEntropy())
    ref = nn.functional.cross_entropy(lm(tok).reshape(-1, 6), tgt.reshape(-1), ignore_index=-100)
    assert float(h(fl.get())) == pytest.approx(float(ref), rel=1e-6)  # the loss computes in float32


def test_subset_surface_job_moves_only_the_selected_parameters(compose, lsx_dirs):
    import h5py

    from lsx.cli.analyze import run_analysis

    cache, out = lsx_dirs
    c = compose(
        "analysis=surface2d",
        *TINY,
        "analysis.x.num=3",
        "analysis.y.num=3",
        "analysis.params.include=[3.*]",
        "analysis.ignore=none",
    )
    res = run_analysis(c, out / "run", progress=False)
    assert res["params"]["names"] == ["3.weight", "3.bias"] and res["params"]["num_params"] == 6 * 10 + 10
    job = json.loads((out / "run" / "results.json").read_text())
    with h5py.File(f"{job['job_dir']}/surface.h5") as h:
        dirs = np.asarray(h["directions"])
        layout = json.loads(h.attrs["layout"])
    moved = {e["name"] for e in layout if np.any(dirs[:, e["start"] : e["stop"]] != 0)}
    assert moved == {"3.weight", "3.bias"}
    full = run_analysis(
        compose("analysis=surface2d", *TINY, "analysis.x.num=3", "analysis.y.num=3", "analysis.ignore=none"),
        out / "run_full",
        progress=False,
    )
    assert "params" not in full and full["job_dir"] != res["job_dir"]
    assert full["metrics"]["center_train_loss"] == pytest.approx(res["metrics"]["center_train_loss"], rel=1e-6)


def test_default_params_and_blocks_keep_the_job_key(compose):
    from lsx.jobs.base import job_key

    c = compose("analysis=hessian", *TINY)
    old = dict(c, analysis={k: v for k, v in c["analysis"].items() if k not in ("params", "blocks", "k_bottom")})
    assert job_key(c) == job_key(old)  # jobs computed before the options existed keep their directories
    assert job_key(compose("analysis=hessian", *TINY, "analysis.k_bottom=0")) != job_key(c)
    assert job_key(compose("analysis=hessian", *TINY, "analysis.params.exclude=['*.bias']")) != job_key(c)
    assert job_key(compose("analysis=hessian", *TINY, "analysis.blocks=depth1")) != job_key(c)


def test_hessian_job_per_block_on_a_subset(compose, lsx_dirs):
    from lsx.cli.analyze import run_analysis

    cache, out = lsx_dirs
    c = compose(
        "analysis=hessian",
        *TINY,
        "analysis.k=2",
        "analysis.k_bottom=0",  # no smallest eigenvalues and no density: what a per-block question needs
        "analysis.slq_probes=0",
        "analysis.trace_samples=8",
        "analysis.num_examples=32",
        "analysis.blocks=depth1",
        "analysis.params.exclude=['1.bias']",
    )
    res = run_analysis(c, out / "run", progress=False)
    m = res["metrics"]
    assert m["bottom_eigenvalues"] == [] and m["lambda_min"] is None and m["near_zero_eigenvalues"] is None
    assert "skipped" in m["eigsh_message"] and len(m["top_eigenvalues"]) == 2
    stages = Path(res["job_dir"]) / "stages"
    assert (stages / "eigsh_LA.pt").exists() and not (stages / "eigsh_SA.pt").exists() and not (stages / "slq.pt").exists()
    assert (stages / "hessian_block_traces.pt").exists()  # block "1" (1.weight) is larger than the 8 probes
    assert res["params"]["names"] == ["1.weight", "3.weight", "3.bias"] and m["num_params"] == res["params"]["num_params"]
    table = m["blocks_table"]
    assert [r["block"] for r in table] == ["1", "3"] and [r["num_tensors"] for r in table] == [1, 2]
    assert m["blocks_cover_all"] and max(r["lambda_max"] for r in table) <= m["lambda_max"] * (1 + 1e-3)
    d = res["job_dir"]
    csv = open(f"{d}/hessian_blocks.csv").read().splitlines()
    assert csv[0].startswith("block,") and len(csv) == 3
    assert all(res["artifacts"][k] for k in ("blocks_plot", "blocks_csv"))


@pytest.mark.slow  # trains a tiny transformer: ~20 s
def test_hessian_job_with_a_next_token_loss_on_a_transformer(compose, lsx_dirs):
    pytest.importorskip("transformers")
    from lsx.cli.analyze import run_analysis

    cache, out = lsx_dirs
    c = compose(
        "experiment=byo_transformer",
        "training.epochs=1",
        "data.num_train=200",
        "data.num_test=50",
        "data.landscape_train=64",
        "data.landscape_test=32",
        "analysis=hessian",
        "analysis.trace_samples=4",  # the preset's k=1, k_bottom=0: the smallest eigenvalues take hundreds of products
        "analysis.slq_probes=1",
        "analysis.slq_steps=5",
        "analysis.num_examples=8",
        "analysis.blocks=depth3",
    )
    res = run_analysis(c, out / "run", progress=False)
    m = res["metrics"]
    assert np.isfinite(m["lambda_max"]) and m["lambda_max"] > 0 and np.isfinite(m["trace"])
    blocks = [r["block"] for r in m["blocks_table"]]
    assert "transformer.h.0" in blocks and "transformer.wte" in blocks and m["blocks_cover_all"]


def test_subset_plane_and_interpolation_directions_stay_in_the_subset():
    from lsx.jobs.landscape_common import restricted
    from lsx.jobs.plane import subset_plane

    _, flat, _, _ = _mlp_loss()
    t0 = flat.get()
    t1, t2 = t0 + torch.randn_like(t0), t0 + torch.randn_like(t0)
    sub = select_params(flat, include=["0.weight"])
    basis, pos = subset_plane([t0, t1, t2], sub)
    assert torch.all(basis[:, ~sub.mask] == 0) and torch.allclose(basis @ basis.T, torch.eye(2, dtype=t0.dtype), atol=1e-12)
    # the projected optima: the second one at the distance of its selected parameters from θ_0
    assert pos[1, 0] == pytest.approx(float((t1 - t0)[sub.mask].norm()), rel=1e-12) and pos[1, 1] == 0
    d = restricted(sub, t1 - t0)
    assert torch.equal(d[sub.mask], (t1 - t0)[sub.mask]) and torch.all(d[~sub.mask] == 0)
    assert restricted(None, t1 - t0) is not None and torch.equal(restricted(None, t1 - t0), t1 - t0)
