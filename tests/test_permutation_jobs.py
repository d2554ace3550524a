"""The permutation_barrier job, analysis.align on the path jobs, and their bad input (tiny runs)."""

import json

import pytest
import yaml
from conftest import run_module

TINY = ("debug=fast", "model=mlp", "model.hidden=16")


def _result(out, job):
    d = sorted((out / "jobs").glob(f"{job}_*"))[-1]
    return json.loads((d / "results.json").read_text()), d


@pytest.mark.slow  # ~10 s of CPU: trains 4 tiny MLPs
def test_permutation_barrier_job(lsx_dirs):
    cache, out = lsx_dirs
    barrier_job = (
        "analysis=permutation_barrier",
        *TINY,
        "optima.seeds=[0,1,2,3]",
        "analysis.alpha_num=3",
        "analysis.match_examples=64",
    )
    r = run_module("lsx.analyze", *barrier_job)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "permutation_barrier pairs: 2/2 done in" in r.stderr + r.stdout  # progress off a terminal: log lines
    res, d = _result(out, "permutation_barrier")
    m = res["metrics"]
    assert m["n_pairs"] == 2 and {p["pair"] for p in m["pairs"]} == {"0-1", "2-3"}
    assert m["variants"] == ["naive", "naive_repair", "weight", "weight_repair", "activation", "activation_repair"]
    assert len(m["pairs"]) == 2 * 6
    for p in m["pairs"]:
        assert p["barrier_train_loss"] >= -1e-6  # the grid holds both endpoints, where the rise is 0
        assert p["distance"] <= p["distance_naive"] + 1e-6 or p["method"] == "activation"
    assert m["distance_weight"] < m["distance_naive"]
    assert m["align_seconds_weight"] > 0 and m["eval_pass_seconds"] > 0
    # the matched-training check compares the endpoints' losses the barriers are measured from
    naive = {p["pair"]: p for p in m["pairs"] if p["variant"] == "naive"}
    measured = {t["seed"]: t["analysis_train_loss"] for t in res["training"]}
    assert measured[0] == pytest.approx(naive["0-1"]["train_loss_a"])
    assert measured[3] == pytest.approx(naive["2-3"]["train_loss_b"])
    for art in res["artifacts"].values():
        assert (d / art).exists()
    # every pair of the four: activation matching runs each optimum once for its three pairs, with the
    # permutations pairwise matching finds (the same distances as the disjoint run's pairs)
    r = run_module("lsx.analyze", *barrier_job, "analysis.pairs=all", "analysis.methods=[activation]")
    assert r.returncode == 0, r.stderr[-3000:]
    (d_all,) = [p for p in (out / "jobs").glob("permutation_barrier_*") if p != d]
    every = json.loads((d_all / "results.json").read_text())
    assert every["metrics"]["n_pairs"] == 6 and (d_all / "stages" / "activation_matching.pt").exists()
    dist = {p["pair"]: p["distance"] for p in every["metrics"]["pairs"] if p["variant"] == "activation"}
    before = {p["pair"]: p["distance"] for p in m["pairs"] if p["variant"] == "activation"}
    assert len(dist) == 6 and all(dist[k] == before[k] for k in ("0-1", "2-3"))


@pytest.mark.slow
def test_align_on_interpolation_shortens_the_line(lsx_dirs):
    cache, out = lsx_dirs
    ends = "analysis.endpoints=[{label: a, overrides: {seed: 0}}, {label: b, overrides: {seed: 1}}]"
    common = ("analysis=interpolation", *TINY, ends, "analysis.alpha.num=5", "analysis.alpha.min=0", "analysis.alpha.max=1")
    for align in ("none", "weight", "activation"):
        r = run_module("lsx.analyze", *common, f"analysis.align={align}")
        assert r.returncode == 0, r.stderr[-3000:]
    dist = {}
    for d in (out / "jobs").glob("interpolation_*"):
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        dist[cfg["analysis"]["align"]] = json.loads((d / "results.json").read_text())["metrics"]["distance"]
    assert dist["weight"] < dist["none"] and dist["activation"] < dist["none"]


@pytest.mark.parametrize(
    "args,message",
    [
        # align on a job that does not take it; an unknown align (refused before training, like the jobs refuse it)
        (("analysis=surface2d", "analysis.align=weight"), "lsx: error: unknown key 'analysis.align'"),
        (("analysis=interpolation", "analysis.align=greedy"), "analysis.align='greedy'; valid: none, weight, activation"),
        pytest.param(
            ("analysis=permutation_barrier", "optima.seeds=[0,1,2]"),
            "pairs=disjoint needs an even number",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_input_is_one_line(lsx_dirs, args, message):
    r = run_module("lsx.analyze", *args, *TINY[:1])
    assert r.returncode != 0
    assert message in r.stderr
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1, r.stderr  # one line, no traceback
    cache, out = lsx_dirs
    assert not list((out / "jobs").glob("*")), "bad input left a job directory behind"
