"""A job sharded over 2 gloo CPU processes: same surface as 1 process, one set of outputs, resumable
with another world size (lsx.distributed + the sharding in lsx.landscape.engine.surface)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from lsx.distributed import free_port, local_rank_env

FAST = (
    "debug=fast",
    "analysis=surface2d",
    "analysis.x.num=3",
    "analysis.y.num=3",
    "analysis.flush_every=2",
    "training.max_steps=3",
)


def _rank_main(rank: int, world: int, port: int, c: dict, run_root: str, fail_on_call: int | None) -> None:
    """One launched rank, as torchrun would start it (env vars), running the analysis entry's job path."""
    os.environ.update(local_rank_env(rank, world, port))
    torch.set_num_threads(1)
    from lsx import distributed
    from lsx.cli.analyze import run_analysis

    if fail_on_call is not None and rank == 1:  # this rank dies during its share of block `fail_on_call`
        from lsx.landscape.engine.evaluator import Evaluator

        real, calls = Evaluator.evaluate, [0]

        def dying(self, *a, **k):
            calls[0] += 1
            if calls[0] == fail_on_call:
                os._exit(3)
            return real(self, *a, **k)

        Evaluator.evaluate = dying
    assert distributed.init_from_env() == (rank, world)
    try:
        res = run_analysis(c, Path(run_root) / f"rank{rank}", progress=False)
        assert res["job"] == "surface2d"  # every rank gets rank 0's results
    finally:
        distributed.shutdown()


def _launch(world: int, c: dict, run_root: Path, fail_on_call: int | None = None) -> None:
    mp.spawn(_rank_main, args=(world, free_port(), c, str(run_root), fail_on_call), nprocs=world, join=True)


def _store(job_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with h5py.File(Path(job_dir) / "surface.h5", "r") as f:
        return f["done"][()], {k: f["metrics"][k][()] for k in f["metrics"]}


def _single_process(c: dict, run_dir: Path, monkeypatch=None) -> tuple[dict, list[int]]:
    """The single-process path (no process group), counting the points it evaluates."""
    from lsx.cli.analyze import run_analysis
    from lsx.landscape.engine.evaluator import Evaluator

    evaluated: list[int] = []
    real = Evaluator.evaluate_at
    if monkeypatch is not None:
        monkeypatch.setattr(Evaluator, "evaluate_at", lambda self, th, *a, **k: evaluated.append(1) or real(self, th, *a, **k))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_analysis(c, run_dir, progress=False), evaluated
    finally:
        torch.set_num_threads(threads)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _core_rank(rank: int, world: int, port: int, root: str) -> None:
    """compute_surface on one rank: rank 0's store in the job dir, rank 1's in a scratch dir (as run_analysis does)."""
    os.environ.update(local_rank_env(rank, world, port))
    torch.set_num_threads(1)
    from lsx import distributed

    distributed.init_from_env()
    try:
        res = _tiny_surface(Path(root) / ("job" if rank == 0 else "scratch1") / "s.h5")
        np.save(Path(root) / f"res{rank}.npy", res["train_loss"])
    finally:
        distributed.shutdown()


def _tiny_surface(path: Path) -> dict[str, np.ndarray]:
    from lsx.landscape.engine.evaluator import Evaluator
    from lsx.landscape.engine.grids import grid_points
    from lsx.landscape.engine.surface import compute_surface

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    ev = Evaluator(model, train=(x, y), test=(x[:16], y[:16]))
    theta = ev.flat.get()
    dirs = torch.randn(2, theta.numel(), generator=torch.Generator().manual_seed(1))
    axis = np.linspace(-1, 1, 3)
    return compute_surface(ev, theta, dirs, grid_points(axis, axis), path, {"kind": "test"}, {"n": 3}, flush_every=2)


def test_compute_surface_on_two_ranks_equals_one_and_only_rank0_writes(tmp_path):
    ref = _tiny_surface(tmp_path / "single" / "s.h5")
    mp.spawn(_core_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):  # every rank returns the full surface, equal to the single process's
        np.testing.assert_array_equal(np.load(tmp_path / f"res{r}.npy"), ref["train_loss"])
    assert not (tmp_path / "scratch1").exists(), "rank 1 wrote a store"
    done, m = _store_at(tmp_path / "job" / "s.h5")
    assert done.all()
    np.testing.assert_array_equal(m["train_loss"], ref["train_loss"].ravel())


def _store_at(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        return f["done"][()], {k: f["metrics"][k][()] for k in f["metrics"]}


@pytest.mark.slow
def test_two_ranks_give_the_single_process_surface_with_one_set_of_outputs(compose, lsx_dirs, tmp_path):
    _, out = lsx_dirs
    c1 = compose(*FAST, "paths.output_root=" + str(tmp_path / "one"))
    c2 = compose(*FAST, "paths.output_root=" + str(tmp_path / "two"))
    ref, _ = _single_process(c1, tmp_path / "one" / "run")  # also trains the optimum into the shared cache

    _launch(2, c2, tmp_path / "two" / "runs")
    two = tmp_path / "two"
    job_dirs = list((two / "jobs").iterdir())
    assert len(job_dirs) == 1
    assert not (two / "runs" / "rank1").exists(), "rank 1 must leave no run directory"
    assert sorted(p.name for p in (two / "runs").iterdir()) == ["rank0"]
    # exactly the files the single process wrote: nothing extra from rank 1
    assert _files(job_dirs[0]) == _files(Path(ref["job_dir"]))
    done1, m1 = _store(Path(ref["job_dir"]))
    done2, m2 = _store(job_dirs[0])
    assert done1.all() and done2.all() and len(done2) == 9
    for k in m1:
        np.testing.assert_array_equal(m2[k], m1[k], err_msg=k)  # bitwise: same per-point computation on CPU


@pytest.mark.slow
def test_killed_two_rank_job_resumes_with_one_rank_computing_only_the_missing_points(compose, lsx_dirs, tmp_path, monkeypatch):
    c_ref = compose(*FAST, "paths.output_root=" + str(tmp_path / "ref"))
    ref, _ = _single_process(c_ref, tmp_path / "ref" / "run")
    c = compose(*FAST, "paths.output_root=" + str(tmp_path / "job"))

    # flush_every=2: blocks of 4 points; rank 1 dies in the third block, after rank 0 stored the first
    with pytest.raises(Exception):
        _launch(2, c, tmp_path / "job" / "runs", fail_on_call=3)
    job_dir = next((tmp_path / "job" / "jobs").iterdir())
    done, _ = _store(job_dir)
    assert 0 < done.sum() < 9, f"{done.sum()} points stored by the killed job"
    assert not (job_dir / "DONE").exists()

    res, evaluated = _single_process(c, tmp_path / "job" / "resume", monkeypatch)
    assert Path(res["job_dir"]) == job_dir
    # the missing points and the centre (one extra evaluation the job reports) — none of the stored points again
    n_missing = int((~done).sum())
    assert n_missing <= len(evaluated) <= n_missing + 1, (n_missing, len(evaluated))
    done_after, m = _store(job_dir)
    _, m_ref = _store(Path(ref["job_dir"]))
    assert done_after.all()
    for k in m_ref:
        np.testing.assert_array_equal(m[k], m_ref[k], err_msg=k)


@pytest.mark.slow
def test_single_process_job_resumes_on_two_ranks(compose, lsx_dirs, tmp_path, monkeypatch):
    """The other direction: a store left by a 1-process job is finished by 2 ranks, nothing recomputed."""
    from lsx.landscape.engine import surface

    c = compose(*FAST, "paths.output_root=" + str(tmp_path / "job"))
    real = surface._run_single

    def stop_after_three(evaluator, theta0, dirs, grid, store, progress):
        def on_point(i, m):
            store.record(i, m)
            if store.done.sum() == 3:
                store.flush()
                raise RuntimeError("stopped after 3 points")

        try:
            evaluator.evaluate(theta0, dirs, grid, indices=store.missing, on_point=on_point)
        finally:
            if store.unflushed:
                store.flush()

    monkeypatch.setattr(surface, "_run_single", stop_after_three)
    with pytest.raises(RuntimeError, match="stopped"):
        _single_process(c, tmp_path / "job" / "run0")
    monkeypatch.setattr(surface, "_run_single", real)
    job_dir = next((tmp_path / "job" / "jobs").iterdir())
    done, before = _store(job_dir)
    assert done.sum() == 3

    _launch(2, c, tmp_path / "job" / "runs")
    done_after, after = _store(job_dir)
    assert done_after.all() and (job_dir / "DONE").exists()
    for k in before:  # stored points kept bit for bit
        np.testing.assert_array_equal(after[k][done], before[k][done], err_msg=k)
    ref, _ = _single_process(compose(*FAST, "paths.output_root=" + str(tmp_path / "ref")), tmp_path / "ref" / "run")
    _, m_ref = _store(Path(ref["job_dir"]))
    for k in m_ref:
        np.testing.assert_array_equal(after[k], m_ref[k], err_msg=k)


def _memo_rank(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update(local_rank_env(rank, world, port))
    from lsx import distributed
    from lsx.jobs.base import JobContext

    distributed.init_from_env()
    try:
        ctx = JobContext({}, Path(root) / ("job" if rank == 0 else f"scratch{rank}"), progress=False)
        computed: list[str] = []

        def loop(memo):
            return [memo(f"item_{j}", lambda j=j: computed.append(f"item_{j}") or j * j) for j in range(7)]

        out = distributed.run_memo_loop_sharded(ctx, "sq_", loop, lambda: -1)
        np.save(Path(root) / f"memo{rank}.npy", np.array(out))
        (Path(root) / f"computed{rank}.txt").write_text("\n".join(computed))
    finally:
        distributed.shutdown()


@pytest.mark.slow
def test_memo_loop_items_are_computed_once_across_ranks_and_stored_by_rank0(tmp_path):
    """tunnel_width's directions: each item on one rank, every rank gets all; a rerun computes nothing."""
    stages = tmp_path / "job" / "stages"
    stages.mkdir(parents=True)
    torch.save(4, stages / "sq_item_2.pt")  # stored by an earlier (killed) run
    mp.spawn(_memo_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        assert np.load(tmp_path / f"memo{r}.npy").tolist() == [j * j for j in range(7)]
    computed = [(tmp_path / f"computed{r}.txt").read_text().split() for r in (0, 1)]
    assert sorted(computed[0] + computed[1]) == sorted(f"item_{j}" for j in range(7) if j != 2)  # once each
    assert computed[0] and computed[1]  # both ranks worked
    assert sorted(p.name for p in stages.iterdir()) == sorted(f"sq_item_{j}.pt" for j in range(7))
    assert not any(p.is_file() for p in (tmp_path / "scratch1").rglob("*")), "rank 1 stored stages"


def test_launch_env_reads_torchrun_and_srun_steps_and_ignores_single_processes(monkeypatch):
    from lsx.distributed import launch_env, single_process_env

    for k in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "SLURM_PROCID",
        "SLURM_NTASKS",
        "SLURM_STEP_NUM_TASKS",
        "SLURM_LOCALID",
        "SLURM_JOB_ID",
        "SLURM_JOB_NODELIST",
    ):
        monkeypatch.delenv(k, raising=False)
    assert launch_env() is None
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "4")  # a batch script of a 4-task allocation: one process, not 4 ranks
    assert launch_env() is None
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("MASTER_ADDR", "node7")
    assert launch_env() == {"rank": 0, "world": 4, "local_rank": 0, "addr": "node7", "port": 20777}
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("MASTER_PORT", "29511")
    assert launch_env() == {"rank": 1, "world": 2, "local_rank": 1, "addr": "node7", "port": 29511}
    with single_process_env():  # what Lightning sees while rank 0 trains
        assert launch_env() is None
    assert launch_env()["world"] == 2
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launch_env() is None  # torchrun --nproc_per_node=1: the single-process path


def test_a_sharded_job_refuses_a_multi_process_trainer(monkeypatch):
    from lsx import distributed

    distributed.check_single_device_trainer({"strategy": "ddp", "devices": -1})  # one process: anything goes
    monkeypatch.setattr(distributed, "rank_world", lambda: (0, 2))
    distributed.check_single_device_trainer({"strategy": "auto", "devices": 1})
    for bad in ({"strategy": "ddp", "devices": 1}, {"strategy": "auto", "devices": 2}, {"strategy": "ddp_spawn", "devices": 2}):
        with pytest.raises(ValueError, match="trainer=cpu or trainer=gpu"):
            distributed.check_single_device_trainer(bad)
