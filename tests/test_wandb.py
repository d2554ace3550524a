"""W&B offline: a 2-job multirun writes one offline run per job, never hanging."""
from conftest import run_module


def test_two_job_multirun_gives_two_offline_runs(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", "-m", "seed=0,1", "debug=fast", "logger=wandb", env={"WANDB_MODE": "offline"})
    assert res.returncode == 0, res.stderr[-2000:]
    runs = sorted(cache.glob("train/*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs
    assert len({r.parent.parent.parent for r in runs}) == 2  # one per training run


def test_mode_is_offline_with_a_key_but_no_reachable_server(monkeypatch):
    from lsx.tracking import wandb_setup

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr(wandb_setup, "server_reachable", lambda *a, **k: False)
    assert wandb_setup.wandb_mode() == "offline"
    monkeypatch.setattr(wandb_setup, "server_reachable", lambda *a, **k: True)
    assert wandb_setup.wandb_mode() == "online"
    assert wandb_setup.wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_setup.wandb_mode() == "offline"


def test_probe_of_a_closed_port_says_unreachable():
    from lsx.tracking.wandb_setup import server_reachable

    assert server_reachable("http://127.0.0.1:9", timeout=1.0) is False  # discard port: nothing listens
