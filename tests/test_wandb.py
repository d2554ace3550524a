"""W&B offline: a 2-job multirun writes one offline run per job, never hanging."""
from conftest import run_module


def test_two_job_multirun_gives_two_offline_runs(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", "-m", "seed=0,1", "debug=fast", "logger=wandb", env={"WANDB_MODE": "offline"})
    assert res.returncode == 0, res.stderr[-2000:]
    runs = sorted(cache.glob("train/*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs
    assert len({r.parent.parent.parent for r in runs}) == 2  # one per training run
