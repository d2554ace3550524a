"""Faults a researcher meets in practice: corrupt and truncated files, bad input, full or
read-only disks, concurrent identical jobs, thread counts. Each gives one clear line or a
clean recovery, never a traceback or a silently wrong result."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from conftest import run_module

from lsx.training.checkpoints import CheckpointError, load_checkpoint
from lsx.training.runner import run_dir_for, train

FAST = ("debug=fast", "trainer.progress_bar=false")


# ----------------------------------------------------------------- determinism (item 7)
def test_same_seed_checkpoints_are_byte_identical(compose, tmp_path):
    c = compose(*FAST, "training.epochs=2", "training.checkpoint_epochs=[0,1]")
    a = train(c, progress=False)
    b = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "other"))), progress=False)
    assert sorted(a.checkpoints) == [0, 1, 2]
    for epoch, path in a.checkpoints.items():
        assert path.read_bytes() == b.checkpoints[epoch].read_bytes(), f"epoch {epoch} differs"


def test_thread_count_is_recorded_in_every_output(compose):
    run = train(compose(*FAST), progress=False)
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["torch_threads"] == torch.get_num_threads()
    assert load_checkpoint(run.final).torch_threads == torch.get_num_threads()


def test_resnet_trains_at_one_thread_without_channels_last(lsx_dirs):
    """torch 2.13 CPU can abort channels_last ResNet steps at 1 thread; lsx trains NCHW there. Off a terminal the
    progress bar asked for becomes one plain line per epoch."""
    out = run_module(
        "lsx.train",
        "model=resnet20",
        "data=synthetic",
        "data.num_train=64",
        "data.num_test=32",
        "data.batch_size=16",
        "training.epochs=2",
        "logger=none",
        "trainer.progress_bar=true",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "channels_last disabled" in text
    assert "\r" not in text and "it/s" not in text  # no progress bar
    assert "epoch 1/2: train loss" in text and "epoch 2/2: train loss" in text and "val acc" in text
    assert "training resnet20 on synthetic, seed 0" in text
    run_dir = next((lsx_dirs[0] / "train").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["torch_threads"] == 1 and summary["channels_last"] is False


def test_atomic_writes_respect_the_umask(tmp_path):
    from lsx.utils.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o002)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o664


def test_npz_files_are_written_atomically_with_the_bytes_of_np_savez(tmp_path, monkeypatch):
    """Every job's .npz goes through a temp file: a write that fails leaves neither the file nor a temp."""
    import numpy as np

    from lsx.utils.io import atomic_savez, current_umask

    arrays = {"alpha": np.linspace(0, 1, 5), "loss": np.arange(5.0), "path": np.zeros((3, 2))}  # an array may be "path"
    np.savez(tmp_path / "direct.npz", **arrays)
    atomic_savez(tmp_path / "atomic.npz", **arrays)
    assert (tmp_path / "atomic.npz").read_bytes() == (tmp_path / "direct.npz").read_bytes()
    assert stat.S_IMODE((tmp_path / "atomic.npz").stat().st_mode) == 0o666 & ~current_umask()

    def fail(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_savez(tmp_path / "half.npz", **arrays)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.npz", "direct.npz"]


# ----------------------------------------------------------------- corruption (item 5)
def test_truncated_resume_point_is_moved_aside_and_the_run_restarts(compose, tmp_path, caplog):
    c = compose(*FAST, "training.epochs=2", "training.keep_resume=true")
    reference = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "ref"))), progress=False)
    run_dir, _ = run_dir_for(c)
    run_dir.mkdir(parents=True)
    good = (reference.run_dir / "resume.ckpt").read_bytes()
    (run_dir / "resume.ckpt").write_bytes(good[: len(good) // 2])  # killed mid-write by a full disk
    with caplog.at_level("WARNING"):
        run = train(c, progress=False)
    assert (run_dir / "resume.ckpt.corrupt").exists()
    assert sum("unreadable" in r.getMessage() for r in caplog.records) == 1
    assert run.final.read_bytes() == reference.final.read_bytes()


def test_corrupt_final_checkpoint_of_a_finished_run_is_refused(compose):
    c = compose(*FAST)
    run = train(c, progress=False)
    run.final.write_bytes(run.final.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"{run.run_dir}.*Delete"):
        train(c, progress=False)


@pytest.mark.slow  # end to end, ~10 s: make test-all (the fast suite stays under 5 min)
def test_corrupt_final_checkpoint_fails_the_cli(lsx_dirs):
    assert run_module("lsx.train", *FAST).returncode == 0
    final = next((lsx_dirs[0] / "train").glob("*/epoch_0001.pt"))
    final.write_bytes(b"garbage")
    out = run_module("lsx.train", *FAST)
    assert out.returncode != 0 and "trained" not in out.stdout
    assert str(final.parent.name) in out.stderr and "Traceback" not in out.stderr


def test_corrupt_summary_names_the_file(compose):
    c = compose(*FAST)
    run = train(c, progress=False)
    (run.run_dir / "summary.json").write_text('{"config_hash": ')
    with pytest.raises(ValueError, match="summary.json is corrupt"):
        train(c, progress=False)


def test_corrupt_results_json_names_the_file(tmp_path):
    from lsx.tracking.results import read_results

    (tmp_path / "results.json").write_text("{")
    with pytest.raises(ValueError, match="results.json is corrupt"):
        read_results(tmp_path)


def test_failed_bad_value_leaves_no_empty_cache_dir(compose):
    c = compose(*FAST, "optimizer.name=rmsprop")
    with pytest.raises(ValueError, match="valid optimizers"):
        train(c, progress=False)
    run_dir, _ = run_dir_for(c)
    assert not run_dir.exists()


# ----------------------------------------------------------------- bad input (item 6)
@pytest.mark.parametrize(
    "args, words",
    [  # bad values are checked in-process by tests/test_cli_validation.py; these two run the real command
        (("seeed=1",), ["unknown key 'seeed'", "valid top-level keys", "seed"]),
        (("-m", "hydra/launcher=slurm", "seed=0,1"), ["sbatch"]),
    ],
)
def test_bad_input_is_one_line_before_anything_is_created(lsx_dirs, args, words):
    if "hydra/launcher=slurm" in args and __import__("shutil").which("sbatch"):
        pytest.skip("this machine has SLURM")
    out = run_module("lsx.train", *FAST, *args)
    assert out.returncode == 2, out.stderr[-1500:]
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lsx: error:"), out.stderr[-1500:]
    for w in words:
        assert w in err[0]
    assert not lsx_dirs[0].exists(), "no cache directory may be created for bad input"
    assert not lsx_dirs[1].exists(), "no run directory may be created for bad input"


def test_unwritable_output_dir_is_one_line(lsx_dirs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a path under a regular file cannot be created, even by root
    out = run_module("lsx.train", *FAST, f"paths.output_root={blocker}/out")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not writable" in out.stderr, out.stderr[-1500:]


@pytest.mark.parametrize("code, words", [(28, "disk is full"), (13, "permission denied"), (30, "read-only")])
def test_disk_errors_become_one_line(code, words, capsys, monkeypatch):
    from lsx.cli.app import clean_errors

    def fake_exit(status):  # a full disk leaves through os._exit (h5py finalizers crash otherwise)
        raise SystemExit(status)

    monkeypatch.setattr(os, "_exit", fake_exit)

    @clean_errors
    def job(cfg):
        raise OSError(code, os.strerror(code), "/data/out/surface.h5")

    with pytest.raises(SystemExit) as exc:
        job(None)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "/data/out/surface.h5" in err


def test_h5py_full_disk_error_is_recognised():
    from lsx.cli.app import os_error_message

    err = RuntimeError(
        "Can't decrement id ref count (file write failed: time = Wed Nov 25 17:06:52 2026\n, "
        "filename = '/out/jobs/s/.surface.h5.tmp', file descriptor = 4, errno = 28, "
        "error message = 'No space left on device')"
    )
    assert "disk is full" in os_error_message(err) and "/out/jobs/s/.surface.h5.tmp" in os_error_message(err)
    assert os_error_message(OSError(2, "No such file")) is None


# ----------------------------------------------------------------- concurrency (item 8)
def test_a_waiter_does_not_hold_the_lock_of_a_directory_its_holder_deleted(tmp_path, monkeypatch):
    """A failed run removes its directory, lock file included, while it holds the lock; a process that
    was already waiting on that lock file must end up holding the lock a newcomer contends for."""
    import fcntl
    import shutil
    import threading

    from lsx.utils.io import file_lock

    run_dir = tmp_path / "train" / "run"
    waiting, holding, done = threading.Event(), threading.Event(), threading.Event()
    real_flock = fcntl.flock

    def flock(fh, op):  # called after the waiter opened the lock file: from here it has the old file
        if op == fcntl.LOCK_EX and threading.current_thread().name == "waiter":
            waiting.set()
        return real_flock(fh, op)

    monkeypatch.setattr(fcntl, "flock", flock)

    def waiter():
        with file_lock(run_dir):
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=waiter, name="waiter", daemon=True)
    with file_lock(run_dir):
        thread.start()
        assert waiting.wait(10)
        shutil.rmtree(run_dir)  # what _remove_if_empty does for a run that failed before its first checkpoint
    try:
        assert holding.wait(10)
        run_dir.mkdir(parents=True, exist_ok=True)  # as file_lock does: a newcomer locks the file at the path
        with open(run_dir / ".lock", "a") as newcomer:  # which the waiter must hold
            with pytest.raises(BlockingIOError):
                real_flock(newcomer, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        done.set()
        thread.join(10)
    assert not thread.is_alive()


def test_two_identical_cold_jobs_evaluate_once(compose, tmp_path):
    """The second of two concurrent identical jobs waits for the first, then is a no-op."""
    import threading
    import time

    from lsx.cli.analyze import run_analysis
    from lsx.jobs.base import JOBS, JobOutput, register_job

    calls = []

    @register_job("_slow_probe")
    def slow(ctx):
        calls.append(ctx.job_dir)
        time.sleep(1.0)
        return JobOutput({"value": 1.0}, {})

    JOBS["_slow_probe"] = "lsx.jobs.base"
    try:
        c = compose(*FAST)
        c["analysis"] = {"job": "_slow_probe"}
        results = [None, None]

        def go(i):
            results[i] = run_analysis(c, tmp_path / f"run{i}", progress=False)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        JOBS.pop("_slow_probe", None)
    assert len(calls) == 1
    assert results[0]["metrics"] == results[1]["metrics"] == {"value": 1.0}
    assert results[0]["job_dir"] == results[1]["job_dir"]


def test_a_job_that_refuses_its_input_leaves_no_empty_job_dir_and_one_with_a_stage_keeps_it(compose, tmp_path):
    """Bad input a job's own code refuses (before it writes anything) leaves no job directory; a job that
    failed after its first stage keeps its directory, and the rerun resumes from that stage."""
    from lsx.cli.analyze import job_dir_of, run_analysis
    from lsx.jobs.base import JOBS, JobOutput, register_job

    computed = []

    @register_job("_failing_probe")
    def probe(ctx):
        if ctx.analysis["fail"] == "before":
            raise ValueError("analysis.fail: refused before anything was written")
        ctx.stage("first", lambda: computed.append("first") or 1.0)
        if ctx.analysis["fail"] == "after":
            raise RuntimeError("failed after the first stage")
        return JobOutput({"value": 1.0}, {})

    JOBS["_failing_probe"] = "lsx.jobs.base"
    try:
        c = compose(*FAST)
        c["analysis"] = {"job": "_failing_probe", "fail": "before"}
        with pytest.raises(ValueError, match="refused before"):
            run_analysis(c, tmp_path / "run0", progress=False)
        assert not job_dir_of(c).exists()
        c["analysis"] = {"job": "_failing_probe", "fail": "after"}
        with pytest.raises(RuntimeError):
            run_analysis(c, tmp_path / "run1", progress=False)
        assert (job_dir_of(c) / "stages" / "first.pt").exists()
        with pytest.raises(RuntimeError):  # the rerun loads the stage rather than computing it again
            run_analysis(c, tmp_path / "run2", progress=False)
        assert computed == ["first"]
    finally:
        JOBS.pop("_failing_probe", None)


# ----------------------------------------------------------------- Makefile (item 9)
def _make(*args, env=None):
    import shutil
    import subprocess

    from conftest import ROOT

    if shutil.which("make") is None:
        pytest.skip("no make")
    return subprocess.run(
        ["make", "-s", *args],
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def test_make_help_lists_the_targets():
    out = _make("help")
    assert out.returncode == 0, out.stderr
    for target in ("demo", "test", "clean-outputs", "clean-cache", "bench"):
        assert f"  {target} " in out.stdout


def test_make_clean_cache_honours_lsx_cache_dir_and_asks(tmp_path):
    cache, outputs = tmp_path / "cache", tmp_path / "out"
    (cache / "train" / "run").mkdir(parents=True)
    outputs.mkdir()
    env = {"LSX_CACHE_DIR": str(cache), "LSX_OUTPUT_DIR": str(outputs)}
    assert _make("clean", env=env).returncode == 0
    assert not outputs.exists() and cache.exists()  # clean keeps trained models
    refused = _make("clean-cache", env=env)  # not a terminal and no FORCE=1
    assert refused.returncode != 0 and "FORCE=1" in refused.stdout + refused.stderr and cache.exists()
    assert _make("clean-cache", "FORCE=1", env=env).returncode == 0 and not cache.exists()


@pytest.mark.parametrize("n_jobs", [1, 2, -1])
def test_joblib_jobs_share_the_cores(n_jobs):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from lsx.cli.app import _threads_per_parallel_job

    cores = len(os.sched_getaffinity(0))
    hc = OmegaConf.create(
        {
            "mode": RunMode.MULTIRUN,
            "launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": n_jobs},
        }
    )
    before = torch.get_num_threads()
    try:
        _threads_per_parallel_job(hc)
        expected = max(1, cores // (cores if n_jobs == -1 else n_jobs))
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_threads_set_the_process_and_are_not_hashed(compose):
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from lsx.cli.app import set_threads
    from lsx.cli.validate import validate_config
    from lsx.jobs.base import job_key
    from lsx.training.runner import run_dir_for

    joblib = OmegaConf.create(
        {
            "mode": RunMode.MULTIRUN,
            "launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 1},
        }
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_threads(1, joblib)  # an explicit count wins over the launcher's share of the cores
        assert torch.get_num_threads() == 1
        set_threads(None, OmegaConf.create({"mode": RunMode.RUN}))  # unset, no joblib: torch's count stays
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    one, two = compose("analysis=surface2d"), compose("analysis=surface2d", "threads=2")
    assert one["threads"] is None and two["threads"] == 2
    assert job_key(one) == job_key(two) and run_dir_for(one) == run_dir_for(two)
    for bad in (0, 1.5, "two"):
        with pytest.raises(ValueError, match=r"^threads must be (>= 1|an integer), got"):
            validate_config(dict(two, threads=bad))


def test_readme_step_schedule_example_drops_the_lr(compose):
    """The README's step-schedule command must lower the LR within its epochs."""
    import shlex

    from conftest import ROOT

    from lsx.training.optim import lr_multiplier

    line = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if "scheduler=step" in ln and "lsx.train" in ln)
    args = [a for a in shlex.split(line.split("#")[0])[3:]]
    c = compose(*args)
    mult = lr_multiplier(c["scheduler"], steps_per_epoch=1, total_epochs=c["training"]["epochs"])
    assert mult(c["training"]["epochs"] - 1) < 1.0, f"{line!r} never drops the LR"


def test_step_milestones_past_the_end_warn(compose, caplog):
    from lsx.cli.validate import validate_config

    with caplog.at_level("WARNING"):
        validate_config(compose("scheduler=step", "training.epochs=30"))
    assert "never drops" in caplog.text


# ----------------------------------------------------------------- external centre (item 9)
def test_surface_centred_on_an_external_checkpoint(compose, tmp_path):
    import shutil

    import h5py

    from lsx.cli.analyze import run_analysis
    from lsx.cli.validate import validate_config

    grid = ("analysis=surface2d", "analysis.x.num=3", "analysis.y.num=3")
    run = train(compose(*FAST, "seed=3"), progress=False)
    external = tmp_path / "elsewhere" / "model.pt"
    external.parent.mkdir()
    shutil.copy(run.final, external)
    c = compose(*FAST, *grid, f"analysis.center_ckpt={external}")
    validate_config(c)
    res = run_analysis(c, tmp_path / "run", progress=False)
    with h5py.File(os.path.join(res["job_dir"], "surface.h5")) as f:
        assert f["directions"].attrs["center"] == str(external)  # provenance names the external centre
    # the same point as the cached run of that seed
    ref = run_analysis(compose(*FAST, *grid, "seed=3"), tmp_path / "ref", progress=False)
    assert res["metrics"]["center_train_loss"] == pytest.approx(ref["metrics"]["center_train_loss"], rel=1e-6)


def test_external_checkpoint_is_validated(compose, tmp_path):
    from lsx.cli.analyze import run_analysis
    from lsx.cli.validate import validate_config

    with pytest.raises(ValueError, match="no checkpoint file"):
        validate_config(compose(*FAST, "analysis=hessian", f"analysis.center_ckpt={tmp_path}/missing.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="corrupt|not a readable torch file"):
        run_analysis(compose(*FAST, "analysis=hessian", f"analysis.center_ckpt={bad}"), tmp_path / "r1", progress=False)
    mlp = train(compose(*FAST, "model=mlp"), progress=False)
    with pytest.raises(CheckpointError, match="expected 'simple_cnn'"):
        run_analysis(
            compose(*FAST, "analysis=tunnel_width", f"analysis.center_ckpt={mlp.final}"), tmp_path / "r2", progress=False
        )


# ----------------------------------------------------------------- logs off a terminal (item 9)
def test_point_store_refuses_a_full_disk_before_hdf5_writes(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    import numpy as np

    from lsx.landscape.engine.grids import linspace_axis
    from lsx.landscape.engine.storage import PointStore

    store = PointStore(tmp_path / "s.h5", linspace_axis(0, 1, 5)[:, None], np.ones((1, 3)), ["train_loss"], {}, {})
    store.flush()
    assert stat.S_IMODE((tmp_path / "s.h5").stat().st_mode) == 0o666 & ~_umask()  # shared caches stay readable
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(OSError) as exc:
        store.flush()
    assert exc.value.errno == errno.ENOSPC and str(tmp_path / "s.h5") == exc.value.filename
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temp file left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
