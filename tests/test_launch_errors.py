"""Launch errors at paper scale: every SLURM launcher preset without SLURM is one line and leaves no folder."""

import os

from conftest import run_module

from lsx.cli.checks import launcher_message


def test_every_slurm_launcher_preset_without_sbatch_is_one_line(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    for launcher in ("slurm", "slurm_multigpu", "slurm_multicpu", "submitit_slurm"):
        msg = launcher_message(["-m", f"hydra/launcher={launcher}"])
        assert msg and msg.startswith(f"hydra/launcher={launcher} submits jobs with SLURM's sbatch") and "\n" not in msg
    assert launcher_message(["-m", "hydra/launcher=joblib_local"]) is None


def test_slurm_multigpu_from_the_command_line_creates_nothing(lsx_dirs, tmp_path):
    _, out = lsx_dirs
    proc = run_module(
        "lsx.analyze",
        "-m",
        "analysis=surface2d",
        "hydra/launcher=slurm_multigpu",
        env={"PATH": "/nonexistent"},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "sbatch" in lines[0], proc.stderr[-1500:]
    assert not out.exists() or not any(out.rglob("*")), "a multirun folder was created"
    assert not (tmp_path / "multirun").exists()


def test_scratch_folders_of_killed_ranks_are_removed_at_the_next_start(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from lsx import distributed

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names no process now (as after SIGKILL)
    orphan, live, foreign = (
        tmp_path / f"lsx-rank1-pid{dead.pid}-abc",
        tmp_path / f"lsx-rank1-pid{os.getpid()}-def",
        tmp_path / "lsx-rank1-old",
    )
    for d in (orphan, live, foreign):
        d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    overrides = distributed.scratch_run_dir_overrides(["lsx.analyze"])
    assert not orphan.exists() and live.exists() and foreign.exists()
    scratch = overrides[0].split("=", 1)[1]
    assert f"lsx-rank1-pid{os.getpid()}-" in scratch and scratch.startswith(str(tmp_path))


def test_the_no_gpu_error_suggests_no_trainer_torchrun_refuses(compose, monkeypatch):
    import pytest
    import torch

    from lsx.cli.validate import validate_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="trainer=ddp_cpu"):
        validate_config(compose("trainer=gpu"))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"no CUDA GPU is visible on this machine; use trainer=cpu$"):
        validate_config(compose("trainer=gpu"))
