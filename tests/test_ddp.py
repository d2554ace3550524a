"""The DDP code path on 2 CPU processes (gloo, ddp_spawn inside pytest)."""

import json

import pytest
import torch

from lsx.training.checkpoints import load_checkpoint
from lsx.training.runner import train


def test_ddp_two_cpu_processes_trains_and_checkpoints(compose):
    c = compose("debug=fast", "trainer=ddp_cpu", "training.epochs=2")
    run = train(c, progress=False)
    assert (run.run_dir / "DONE").exists()
    summary = json.loads((run.run_dir / "summary.json").read_text())  # the effective batch is the ranks' sum
    assert (summary["precision"], summary["world_size"]) == ("32-true", 2)
    assert summary["effective_batch_size"] == 2 * c["data"]["batch_size"]
    assert sorted(run.checkpoints) == [0, 2]
    # the spawned workers trained; the parent reads their stop outcome from the final checkpoint
    assert run.stop == {"epochs_run": 2, "steps": 2, "stopped_by": "epochs", "stop_loss": None}
    w0, w2 = load_checkpoint(run.checkpoints[0]).state_dict, load_checkpoint(run.checkpoints[2]).state_dict
    assert not torch.equal(w0["0.weight"], w2["0.weight"])
    # each rank evaluates its half of the val split and the sums are all-reduced: the last epoch's val
    # loss is the whole split's, i.e. the summary's (the final model on one process)
    curve = run.learning_curve()
    assert [r["epoch"] for r in curve] == [1, 2] and all(r["train/loss"] > 0 for r in curve)
    assert abs(curve[-1]["val/loss"] - run.summary["val_loss"]) < 1e-5 and curve[-1]["val/acc"] == run.summary["val_acc"]
    assert run.config_hash != train(compose("debug=fast", "training.epochs=2"), progress=False).config_hash


@pytest.mark.slow  # two Lightning processes started as a user would: ~30-60 s on 2 shared cores
def test_ddp_subprocess_launcher_finishes_with_the_spawned_summary(compose, lsx_dirs, tmp_path):
    """``lsx.train trainer=ddp``: Lightning re-runs the script for rank 1, which must not wait on the run's
    file lock that rank 0 holds while it waits for rank 1 (it deadlocked). Same weights as ddp_spawn."""
    import json

    from conftest import run_module

    args = ("debug=fast", "trainer=ddp_cpu", "training.epochs=2")
    spawned = train(compose(*args), progress=False)
    cache = tmp_path / "subprocess_cache"
    proc = run_module("lsx.train", *args, "trainer.strategy=ddp", env={"LSX_CACHE_DIR": str(cache)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "trained " in proc.stdout and "GLOBAL_RANK: 1" in proc.stderr
    run_dir = cache / "train" / spawned.run_dir.name  # same cache key: both are 2-process DDP
    summary = json.loads((run_dir / "summary.json").read_text())
    mine, theirs = load_checkpoint(run_dir / "epoch_0002.pt").state_dict, load_checkpoint(spawned.checkpoints[2]).state_dict
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    # the summary is evaluated in another process (its torch thread count may differ): equal up to rounding
    assert summary["metrics"] == pytest.approx(spawned.summary, rel=1e-6)
    assert summary["stopped_by"] == "epochs" and summary["epochs_run"] == 2


def test_an_analysis_refuses_to_start_subprocess_ddp_for_a_missing_optimum(compose, monkeypatch):
    """Lightning's subprocess launcher re-runs this process's command per rank: for lsx.analyze that would be the
    whole analysis again. A cached DDP model is still served (no training starts)."""
    import sys
    from types import SimpleNamespace

    import lsx.training.runner as runner

    c = compose("debug=fast", "trainer=ddp_cpu", "trainer.strategy=ddp")
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", SimpleNamespace(name="lsx.analyze"), raising=False)
    for k in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "SLURM_PROCID"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match=r"re-running `python -m lsx.analyze` once per process; train the optima first"):
        train(c, progress=False)
    run_dir, _ = runner.run_dir_for(c)
    assert not run_dir.exists()  # nothing left behind
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", SimpleNamespace(name="lsx.train"), raising=False)
    started: list[int] = []
    monkeypatch.setattr(runner, "_train_locked", lambda *a, **k: started.append(1))  # stands in for training
    train(c, progress=False)
    assert started == [1]  # lsx.train may relaunch itself
