"""Resuming long loops: the core's memo hook, JobContext.stage, and a job that resumes between items."""

import json

import numpy as np
import pytest
import torch
from conftest import run_module

from lsx.landscape.paths.connectors import low_loss_connector
from lsx.landscape.paths.tunnel import tunnel_width


def _dict_memo(store: dict, log: list):
    def memo(key, compute):
        if key not in store:
            log.append(key)
            store[key] = compute()
        return store[key]

    return memo


def test_tunnel_width_resumes_from_memoised_directions_and_matches():
    c = torch.tensor([3.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    calls = {"n": 0}

    def loss(th):
        calls["n"] += 1
        return float(((th - c) ** 2).sum())

    args = (loss, c, 5, 0, "absolute", 0.25, 0.01, 10.0, 1e-6)
    full = tunnel_width(*args)
    store, log = {}, []
    tunnel_width(*args, memo=_dict_memo(store, log))
    assert log == [f"direction_{k}" for k in range(5)]
    del store["direction_3"], store["direction_4"]  # "killed" after three directions
    calls["n"], log[:] = 0, []
    resumed = tunnel_width(*args, memo=_dict_memo(store, log))
    assert log == ["direction_3", "direction_4"]  # only the missing ones are searched again
    assert calls["n"] == 1 + sum(r.evaluations for k, r in store.items() if k in log)  # + the loss at θ
    np.testing.assert_array_equal(resumed.distances, full.distances)


def test_connector_nodes_go_through_the_memo():
    def loss(th):
        return (th[2] - 1.0) ** 2 + 0.1 * (th[:2] ** 2).sum()

    a, b = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    store, log = {}, []
    first = low_loss_connector(loss, a, b, num_segments=4, steps=20, lr=0.05, memo=_dict_memo(store, log))
    assert log == ["node_1", "node_2", "node_3"]
    log.clear()
    again = low_loss_connector(loss, a, b, num_segments=4, steps=20, lr=0.05, memo=_dict_memo(store, log))
    assert log == [] and torch.equal(first.points, again.points)


def test_job_stage_is_computed_once_saved_atomically_and_recomputed_when_damaged(tmp_path):
    from lsx.jobs.base import JobContext

    ctx = JobContext({"analysis": {}, "seed": 0}, tmp_path / "job", progress=False)
    calls = []
    value = ctx.stage("x", lambda: calls.append(1) or {"a": torch.arange(3), "b": 2.5})
    again = ctx.stage("x", lambda: calls.append(1) or None)
    assert calls == [1] and torch.equal(again["a"], value["a"]) and again["b"] == 2.5
    assert sorted(p.name for p in (tmp_path / "job" / "stages").iterdir()) == ["x.pt"]  # no temp files left
    (tmp_path / "job" / "stages" / "x.pt").write_bytes(b"not a torch file")
    assert ctx.stage("x", lambda: "fresh") == "fresh"
    memo = ctx.memo("loop_")
    assert memo("k", lambda: 7) == 7 and (tmp_path / "job" / "stages" / "loop_k.pt").exists()


@pytest.mark.slow  # end to end, tens of seconds: make test-all
def test_killed_tunnel_job_resumes_between_directions(lsx_dirs):
    cache, out = lsx_dirs
    args = (
        "lsx.analyze",
        "analysis=tunnel_width",
        "debug=fast",
        "trainer.progress_bar=false",
        "analysis.num_directions=4",
        "analysis.threshold.value=3.0",
    )
    r = run_module(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    d = next((out / "jobs").glob("tunnel_width_*"))
    first = json.loads((d / "results.json").read_text())["metrics"]
    stages = sorted(p.name for p in (d / "stages").iterdir())
    assert stages == [f"tunnel_direction_{k}.pt" for k in range(4)]
    # as if killed during the last two directions: no DONE, no results, two stages missing
    for name in ("DONE", "results.json", "stages/tunnel_direction_2.pt", "stages/tunnel_direction_3.pt"):
        (d / name).unlink()
    kept = {p: p.stat().st_mtime_ns for p in (d / "stages").iterdir()}
    r = run_module(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished directions were not redone
    resumed = json.loads((d / "results.json").read_text())["metrics"]
    assert resumed["width_mean"] == first["width_mean"] and resumed["evaluations"] == first["evaluations"]
