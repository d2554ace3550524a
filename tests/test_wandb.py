"""W&B offline: a 2-job multirun writes one offline run per job, never hanging."""

import pytest
from conftest import run_module


@pytest.mark.slow  # end to end, several seconds each: make test-all
def test_two_job_multirun_gives_two_offline_runs(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module(
        "lsx.train", "-m", "seed=0,1", "debug=fast", "logger=wandb", env={"WANDB_MODE": "offline", "WANDB_SILENT": ""}
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert not [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("wandb:")]  # quiet outside make
    assert not list(cache.rglob("wandb")), "W&B files belong to the sweep's job directories, not the training cache"
    runs = sorted((out / "multirun").rglob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs
    assert len({r.parent.parent.parent for r in runs}) == 2  # one per training run
    blobs = [r.read_bytes() for r in runs]
    assert any(b"train-seed=0" in b for b in blobs) and any(b"train-seed=1" in b for b in blobs)  # named by the sweep
    relog = run_module("lsx.train", "seed=1", "debug=fast", "logger=wandb", "logger.relog=true", env={"WANDB_MODE": "offline"})
    assert relog.returncode == 0, relog.stderr[-2000:]
    (rerun,) = (out / "runs").rglob("offline-run-*/run-*.wandb")  # the cached run, re-logged from its files
    assert b"train-seed=1" in rerun.read_bytes()
    assert list(rerun.parent.rglob("learning_curve*.table.json"))


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


TUNNEL = (
    "analysis=tunnel_width",
    "debug=fast",
    "analysis.num_directions=1",
    "analysis.threshold.mode=relative_factor",
    "analysis.threshold.value=2.0",
)


def _offline_runs(root):
    return sorted(root.rglob("offline-run-*/run-*.wandb"))


@pytest.mark.slow
def test_analysis_job_is_one_quiet_wandb_run_named_by_its_swept_values(lsx_dirs):
    """Each job: one W&B run (its optima open none), named and tagged by the sweep, curves as tables;
    a cached rerun logs nothing unless logger.relog=true; no `wandb:` console lines."""
    cache, out = lsx_dirs
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": ""}
    res = run_module("lsx.analyze", "-m", *TUNNEL, "optimizer.lr=1e-3,1e-2", "logger=wandb", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("wandb:")]
    assert _offline_runs(cache) == []  # the optima trained inside the jobs opened no runs
    runs = _offline_runs(out)
    assert len(runs) == 2 and len({r.parent.parent.parent for r in runs}) == 2  # one per job's run dir
    blobs = [r.read_bytes() for r in runs]
    assert any(b"lr=0.001-seed=0" in b for b in blobs) and any(b"lr=0.01-seed=0" in b for b in blobs)
    assert all(b"tunnel_width-" in b and b"optimizer.lr" in b for b in blobs)  # name and sweep-key tag
    for r in runs:
        tables = {p.parent.name for p in r.parent.rglob("*.table.json")}
        assert any(t.startswith("simple_cnn_digits_s0_") for t in tables), tables  # the optimum's learning curve
        assert "data" in tables  # the job's data file as a table
    again = run_module("lsx.analyze", "-m", *TUNNEL, "optimizer.lr=1e-3,1e-2", "logger=wandb", env=env)
    assert again.returncode == 0 and len(_offline_runs(out)) == 2 and "logger.relog=true" in again.stdout
    relog = run_module("lsx.analyze", *TUNNEL, "optimizer.lr=1e-3", "logger=wandb", "logger.relog=true", env=env)
    assert relog.returncode == 0, relog.stderr[-2000:]
    assert len(_offline_runs(out)) == 3


class _FakeWandb:
    """Just enough of the wandb module to see what lsx hands it."""

    def __init__(self):
        self.inits, self.logged, self.artifacts, self.run = [], [], [], None
        fake = self

        class Table:
            def __init__(self, columns, data):
                self.columns, self.data = columns, data

        class Artifact:
            def __init__(self, name, type, metadata=None):
                self.name, self.type, self.files = name, type, []

            def add_file(self, path, name=None):
                self.files.append(name or path)

        class Run:
            def __init__(self, kw):
                self.kw, self.summary, self.dir = kw, {}, kw.get("dir")
                self.config = type("C", (), {"update": lambda s, d, allow_val_change=False: None})()

            def log(self, d):
                fake.logged.append(d)

            def log_artifact(self, a):
                fake.artifacts.append(a)

        self.Table, self.Artifact, self._Run = Table, Artifact, Run
        self.Image = lambda path: ("image", path)

    def init(self, **kw):
        self.inits.append(kw)
        self.run = self._Run(kw)
        return self.run

    def finish(self):
        self.run = None


def test_aggregate_run_logs_typed_columns_in_the_jobs_project_and_group(tmp_path, monkeypatch):
    import sys

    import yaml
    from test_sweeps import _l2_sweep

    from lsx.cli.aggregate import aggregate, log_to_wandb

    sweep = _l2_sweep(tmp_path)
    for cfg_path in sweep.glob("*/config.yaml"):
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["logger"] = {"name": "wandb", "project": "tunnels", "entity": "lab"}
        cfg_path.write_text(yaml.safe_dump(cfg))
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = aggregate(sweep, y_keys=["metrics.width_mean"])
    log_to_wandb(sweep, out)
    (kw,) = fake.inits
    assert (kw["project"], kw["entity"], kw["group"], kw["job_type"]) == ("tunnels", "lab", "fort_fig5", "aggregate")
    assert "optimizer.weight_decay" in kw["tags"]
    table = fake.logged[0]["summary"]
    col = {c: [row[i] for row in table.data] for i, c in enumerate(table.columns)}
    assert all(isinstance(v, float) for v in col["optimizer.weight_decay"])
    assert sum(isinstance(v, float) for v in col["metrics.width_mean"]) == 6 and col["metrics.width_mean"].count(None) == 1
    assert col["status"].count("failed") == 1


def test_job_run_has_tables_images_and_a_results_artifact(tmp_path, monkeypatch):
    import json
    import sys

    import numpy as np

    from lsx.tracking.wandb_log import log_job

    job_dir, run_dir, optimum = tmp_path / "job", tmp_path / "run", tmp_path / "simple_cnn_digits_s0_abc"
    for d in (job_dir, run_dir, optimum):
        d.mkdir()
    np.savez(job_dir / "curve.npz", alpha=np.linspace(0, 1, 5), loss=np.arange(5.0), seeds=np.array([0, 1]))
    (optimum / "metrics.csv").write_text("epoch,train/loss,val/acc\n0,2.3,0.1\n1,1.9,\n")
    (optimum / "summary.json").write_text(json.dumps({"metrics": {"test_acc": 0.5}}))
    results = {
        "job": "interpolation",
        "metrics": {
            "gap": 0.25,
            "widths": [1.0, 2.0],
            "pairs": [
                {"pair": "0-1", "seeds": [0, 1], "variant": "naive", "barrier": 1.5},
                {"pair": "0-1", "seeds": [0, 1], "variant": "weight", "barrier": float("nan"), "distance": 2.0},
            ],
            "mixed": [{"value": 1}, {"value": "n/a"}],  # one column of two kinds: text, or W&B refuses the table
        },
        "artifacts": {"curves": "curve.npz"},
        "training": [{"seed": 0, "run_dir": str(optimum)}],
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    (run_dir / "config.yaml").write_text("seed: 1\n")
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    c = {
        "seed": 1,
        "experiment_name": "li_fig2",
        "logger": {"name": "wandb", "project": "p", "tags": ["mine"]},
        "_overrides": ["experiment=li_fig2", "data.batch_size=512", "seed=1"],
    }
    log_job(c, run_dir, job_dir, results)
    (kw,) = fake.inits
    assert kw["name"] == "interpolation-batch_size=512-seed=1" and kw["group"] == "li_fig2"
    assert kw["tags"] == ["li_fig2", "data.batch_size", "mine"] and kw["job_type"] == "analysis"
    (logged,) = fake.logged
    assert logged["gap"] == 0.25 and logged["optima/simple_cnn_digits_s0_abc/test_acc"] == 0.5
    assert logged["data/curve"].columns == ["alpha", "loss"] and logged["data/curve"].data[4] == [1.0, 4.0]
    assert logged["widths"].data == [[0, 1.0], [1, 2.0]]
    assert logged["pairs"].columns == ["pair", "seeds", "variant", "barrier", "distance"]
    assert logged["pairs"].data == [["0-1", "[0, 1]", "naive", 1.5, None], ["0-1", "[0, 1]", "weight", None, 2.0]]
    assert logged["mixed"].data == [["1"], ["n/a"]]
    assert logged["optima/simple_cnn_digits_s0_abc/learning_curve"].data[1] == [1, 1.9, None]
    (art,) = fake.artifacts
    assert {"results.json", "config.yaml", "curve.npz", "optima/simple_cnn_digits_s0_abc/summary.json"} <= set(art.files)


@pytest.mark.slow  # end to end, ~10 s: make test-all (the fast suite stays under 5 min)
def test_fresh_training_run_keeps_wandb_out_of_the_cache_and_says_how_to_sync(lsx_dirs):
    cache, out = lsx_dirs
    res = run_module("lsx.train", "debug=fast", "trainer.progress_bar=false", "logger=wandb", env={"WANDB_MODE": "offline"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert not list(cache.rglob("wandb")), "the training cache must hold the model, not W&B files"
    assert list(out.glob("runs/*/*/wandb/offline-run-*"))
    assert "wandb sync" in res.stdout
