"""No rank idle, none doing another's work (lsx.distributed, lsx.training.runner.train_all): 2 gloo CPU processes
started as torchrun would (env vars, spawned outside pytest's process) train missing optima one per rank, share a
surface's convexity map, run a job that does not shard on rank 0 alone, and resume tunnel_width from the
directions saved in blocks."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from lsx.distributed import free_port, local_rank_env

FAST = ("debug=fast", "training.max_steps=3")
TUNNEL = (*FAST, "analysis=tunnel_width", "analysis.num_directions=8")
CONVEXITY = (
    *FAST,
    "analysis=surface2d",
    "analysis.x.num=3",
    "analysis.y.num=3",
    "analysis.convexity.enabled=true",
    "analysis.convexity.hessian_every=1",
    "analysis.convexity.num_examples=32",
)


def _count_calls(module, name: str, calls: list[str], die_on: int | None = None) -> None:
    """Wrap ``module.name`` to record each call (and to end the process, as a kill would, on call ``die_on``)."""
    real = getattr(module, name)

    def counted(*a, **k):
        calls.append(name)
        if die_on is not None and calls.count(name) == die_on:
            os._exit(3)
        return real(*a, **k)

    setattr(module, name, counted)


def _rank_main(rank: int, world: int, port: int, c: dict, root: str, die_on: int | None) -> None:
    """One launched rank (torchrun's env vars) on the analysis entry's job path; writes what it did to ``root``."""
    os.environ.update(local_rank_env(rank, world, port))
    torch.set_num_threads(1)
    out = Path(root)
    handler = logging.FileHandler(out / f"rank{rank}.log")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger("lsx").addHandler(handler)
    logging.getLogger("lsx").setLevel(logging.INFO)
    from lsx import distributed
    from lsx.cli.analyze import run_analysis
    from lsx.jobs import registry  # noqa: F401
    from lsx.jobs import surface as surface_job
    from lsx.jobs.base import _FUNCS, get_job
    from lsx.landscape.paths import tunnel
    from lsx.training import runner

    job = c["analysis"]["job"]
    calls: list[str] = []
    real_job = get_job(job)
    _FUNCS[job] = lambda ctx: calls.append("job") or real_job(ctx)
    _count_calls(tunnel, "radial_distance", calls, die_on if rank == 1 else None)  # one call per tunnel direction
    _count_calls(surface_job, "principal_curvatures", calls)  # one call per convexity point
    from lsx.jobs import curve_taxonomy

    _count_calls(curve_taxonomy, "hessian_eigen_directions", calls)  # one call per eigenvector kind
    assert distributed.init_from_env() == (rank, world)
    try:
        res = run_analysis(c, out / f"run{rank}", progress=False)
        assert res["job"] == job  # every rank gets rank 0's results
    finally:
        (out / f"calls{rank}.json").write_text(json.dumps(calls))
        (out / f"trained{rank}.json").write_text(json.dumps(sorted(str(p) for p in runner._TRAINED_HERE)))
        distributed.shutdown()


def _launch(c: dict, root: Path, die_on: int | None = None, world: int = 2) -> list[dict]:
    """Run the job on ``world`` ranks; per rank: its log, its counted calls and the runs it trained."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        mp.spawn(_rank_main, args=(world, free_port(), c, str(root), die_on), nprocs=world, join=True)
    finally:
        ranks = []
        for r in range(world):
            calls = root / f"calls{r}.json"
            ranks.append(
                {
                    "log": (root / f"rank{r}.log").read_text() if (root / f"rank{r}.log").exists() else "",
                    "calls": json.loads(calls.read_text()) if calls.exists() else None,
                    "trained": json.loads((root / f"trained{r}.json").read_text()) if calls.exists() else None,
                }
            )
    return ranks


def _single_process(c: dict, run_dir: Path) -> dict:
    from lsx.cli.analyze import run_analysis

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_analysis(c, run_dir, progress=False)
    finally:
        torch.set_num_threads(threads)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_two_ranks_train_two_missing_optima_in_parallel_one_each(compose, lsx_dirs, tmp_path):
    cache, _ = lsx_dirs
    c = compose(*FAST, "analysis=train", "paths.output_root=" + str(tmp_path / "out"))
    assert c["optima"]["seeds"] == [0, 1]
    ranks = _launch(c, tmp_path / "ranks")
    runs = sorted((cache / "train").iterdir())
    assert len(runs) == 2 and all((r / "DONE").exists() for r in runs)
    by_seed = {json.loads((r / "summary.json").read_text())["config"]["seed"]: str(r) for r in runs}
    for rank, seed in ((0, 0), (1, 1)):  # round robin: seed 0 on rank 0, seed 1 on rank 1, each trained once
        assert ranks[rank]["trained"] == [by_seed[seed]], (rank, ranks[rank]["trained"])
        assert f"rank {rank} of 2 trains 1 of the 2 missing optima (seeds {seed})" in ranks[rank]["log"]
        assert f"seed {seed} (config hash" in ranks[rank]["log"]  # the training run's own log line
    results = json.loads(next((tmp_path / "out" / "jobs").iterdir()).joinpath("results.json").read_text())
    assert [t["seed"] for t in results["training"]] == [0, 1]  # the runs the job used, in the job's order


@pytest.mark.slow
def test_a_job_that_does_not_shard_runs_on_rank0_alone_warns_once_and_hands_out_training(compose, lsx_dirs, tmp_path):
    """weight_histograms (does not shard) under 2 ranks: one warning, the job's code on rank 0 only, its two
    models trained one per rank, and the outputs the single process writes."""
    c = compose(*FAST, "analysis=weight_histograms", "paths.output_root=" + str(tmp_path / "two"))
    ranks = _launch(c, tmp_path / "ranks")
    warning = "weight_histograms does not shard over ranks: it runs on rank 0 only, the other 1 rank(s) wait"
    assert ranks[0]["log"].count(warning) == 1 and warning not in ranks[1]["log"]
    assert ranks[0]["calls"] == ["job"] and ranks[1]["calls"] == []  # rank 1 ran none of the job's code
    assert len(ranks[0]["trained"]) == len(ranks[1]["trained"]) == 1  # but trained one of its two models
    assert ranks[0]["trained"] != ranks[1]["trained"]
    job_dirs = list((tmp_path / "two" / "jobs").iterdir())
    assert len(job_dirs) == 1 and sorted(p.name for p in (tmp_path / "ranks").iterdir() if p.is_dir()) == ["run0"]

    one = compose(*FAST, "analysis=weight_histograms", "paths.output_root=" + str(tmp_path / "one"))
    ref = _single_process(one, tmp_path / "r")
    assert _files(job_dirs[0]) == _files(Path(ref["job_dir"]))
    two = json.loads((job_dirs[0] / "results.json").read_text())
    assert two["metrics"] == ref["metrics"]
    with np.load(job_dirs[0] / "weight_histograms.npz") as a, np.load(Path(ref["job_dir"]) / "weight_histograms.npz") as b:
        for k in b.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_curve_taxonomy_eigenvectors_are_computed_on_rank0_alone(compose, lsx_dirs, tmp_path):
    """The P.E./N.E. directions are the same on every rank: rank 0 computes them and sends them, the other rank
    waits; the curves equal the single process's."""
    over = (*FAST, "analysis=curve_taxonomy", "analysis.directions=[pe,ne,gaussian]", "analysis.num=5", "data.landscape_train=64")
    ref = _single_process(compose(*over, "paths.output_root=" + str(tmp_path / "one")), tmp_path / "r")
    ranks = _launch(compose(*over, "paths.output_root=" + str(tmp_path / "two")), tmp_path / "ranks")
    assert ranks[0]["calls"].count("hessian_eigen_directions") == 2
    assert ranks[1]["calls"].count("hessian_eigen_directions") == 0
    job_dir = next((tmp_path / "two" / "jobs").iterdir())
    assert json.loads((job_dir / "results.json").read_text())["metrics"] == ref["metrics"]


@pytest.mark.slow
def test_the_convexity_map_is_computed_once_over_the_ranks(compose, lsx_dirs, tmp_path):
    ref = _single_process(compose(*CONVEXITY, "paths.output_root=" + str(tmp_path / "one")), tmp_path / "r")
    ranks = _launch(compose(*CONVEXITY, "paths.output_root=" + str(tmp_path / "two")), tmp_path / "ranks")
    per_rank = [r["calls"].count("principal_curvatures") for r in ranks]
    assert sum(per_rank) == 9 and min(per_rank) > 0, per_rank  # each of the 3x3 points on one rank
    job_dir = next((tmp_path / "two" / "jobs").iterdir())
    with np.load(job_dir / "convexity.npz") as a, np.load(Path(ref["job_dir"]) / "convexity.npz") as b:
        for k in ("lambda_min", "lambda_max", "ratio"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert sorted(p.name for p in (job_dir / "stages").glob("curvature_*.pt")) == sorted(
        f"curvature_{iy}_{ix}.pt" for iy in range(3) for ix in range(3)
    )


@pytest.mark.slow
def test_tunnel_width_killed_on_two_ranks_resumes_from_the_saved_directions(compose, lsx_dirs, tmp_path):
    ref = _single_process(compose(*TUNNEL, "paths.output_root=" + str(tmp_path / "ref")), tmp_path / "r")
    c = compose(*TUNNEL, "paths.output_root=" + str(tmp_path / "job"))

    # blocks of one direction per rank: rank 1 dies at the start of its third direction (the 6th of 8)
    with pytest.raises(Exception):
        _launch(c, tmp_path / "killed", die_on=3)
    job_dir = next((tmp_path / "job" / "jobs").iterdir())
    saved = sorted(p.name for p in (job_dir / "stages").glob("tunnel_direction_*.pt"))
    assert 3 <= len(saved) <= 4, saved  # two blocks (the last one's final save may race with the kill)
    assert saved == [f"tunnel_direction_{k}.pt" for k in range(len(saved))]
    assert not (job_dir / "DONE").exists()

    ranks = _launch(c, tmp_path / "resumed")
    per_rank = [r["calls"].count("radial_distance") for r in ranks]
    assert sum(per_rank) == 8 - len(saved) and min(per_rank) > 0, per_rank  # only the missing ones, on both ranks
    assert (job_dir / "DONE").exists()
    with np.load(job_dir / "tunnel.npz") as a, np.load(Path(ref["job_dir"]) / "tunnel.npz") as b:
        for k in b.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    got = json.loads((job_dir / "results.json").read_text())["metrics"]
    assert got == ref["metrics"]


def test_a_rank_trains_its_optima_on_its_own_gpu(monkeypatch):
    """Ranks train side by side: Lightning's ``devices=1`` (GPU 0 on every rank) becomes this rank's GPU."""
    from lsx import distributed

    assert distributed.training_devices({"accelerator": "gpu", "devices": 1}) == 1  # one process: as configured
    monkeypatch.setattr(distributed, "device", lambda: torch.device("cuda", 3))
    assert distributed.training_devices({"accelerator": "gpu", "devices": 1}) == [3]
    assert distributed.training_devices({"accelerator": "auto", "devices": "auto"}) == [3]
    assert distributed.training_devices({"accelerator": "cpu", "devices": 1}) == 1
    assert distributed.training_devices({"accelerator": "gpu", "devices": 2}) == 2


def _note(root: str, text: str) -> None:
    """Handed by rank 0 to the waiting ranks: each rank records that it ran it (with its group rank)."""
    from lsx.distributed import group_rank_world

    with open(Path(root) / f"note{group_rank_world()[0]}.txt", "a") as f:
        f.write(text + "\n")


def _alone_rank(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update(local_rank_env(rank, world, port))
    from lsx import distributed
    from lsx.landscape.engine.evaluator import dist_rank_world

    distributed.init_from_env()
    outcome = "returned"
    try:
        if rank == 0:
            with distributed.alone_on_rank0("fake_job"):
                assert distributed.rank_world() == dist_rank_world() == (0, 1)  # the job and the engine see one process
                distributed.on_every_rank(_note, root, "handed out")
                raise ValueError("boom")
        else:
            distributed.serve_rank0()
    except Exception as e:
        outcome = f"{type(e).__name__}: {e}"
    finally:
        (Path(root) / f"outcome{rank}.txt").write_text(outcome)
        distributed.shutdown()


def test_rank0_alone_hands_work_to_the_waiting_ranks_and_its_error_stops_them(tmp_path):
    mp.spawn(_alone_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        assert (tmp_path / f"note{r}.txt").read_text() == "handed out\n"  # run once on each rank
    assert (tmp_path / "outcome0.txt").read_text() == "ValueError: boom"
    assert (tmp_path / "outcome1.txt").read_text() == "RuntimeError: rank 0 failed: ValueError: boom"
