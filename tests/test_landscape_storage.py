"""The resumable HDF5 store and compute_surface: resume, no-op, refusal, atomic writes, re-evaluation from the file."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from test_landscape_engine import data, naive_metrics, setup

from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.grids import grid2d, line
from lsx.landscape.engine.storage import PointStore, StoreMismatch, load_store
from lsx.landscape.engine.surface import compute_surface

ROOT = Path(__file__).resolve().parents[1]
PROV = {"kind": "random_gaussian", "seeds": [1, 2], "norm": "filter", "ignore": "biasbn", "center": "ckpt/epoch_3.pt"}


def surface_case():
    model, flat, theta0, dirs = setup(2)
    return model, flat, theta0, dirs, grid2d((-1, 1, 4), (-0.5, 0.5, 3))


def test_resume_after_failure_evaluates_only_missing_points(tmp_path, caplog):
    model, flat, theta0, dirs, grid = surface_case()
    x, y = data()
    path = tmp_path / "surface.h5"
    one_shot = Evaluator(model, (x, y), chunk_size=100).evaluate(theta0, dirs, grid)

    ev = Evaluator(model, (x, y), chunk_size=100)
    original, calls = ev.evaluate_at, {"n": 0}

    def dying(theta, *a, **k):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("killed")
        return original(theta, *a, **k)

    ev.evaluate_at = dying
    with pytest.raises(RuntimeError, match="killed"):
        compute_surface(ev, theta0, dirs, grid, path, PROV, {"a": 1}, flush_every=2)
    assert torch.equal(flat.get(), theta0)
    partial = load_store(path)
    assert partial.done.sum() == 5 and np.isnan(partial.metrics["train_loss"][~partial.done]).all()
    assert not list(tmp_path.glob("*.tmp"))

    ev2 = Evaluator(model, (x, y), chunk_size=100)  # one chunk per point
    with caplog.at_level("INFO", logger="lsx.progress"):
        res = compute_surface(ev2, theta0, dirs, grid, path, PROV, {"a": 1})
    assert "surface.h5: resuming, 5 of 12 points already done" in caplog.text
    assert ev2.forward_passes == 12 - 5  # the 5 done points were not evaluated again
    assert res["train_loss"].shape == (3, 4)
    np.testing.assert_allclose(res["train_loss"], grid.reshape(one_shot["train_loss"]), rtol=1e-12)

    ev3 = Evaluator(model, (x, y), chunk_size=100)
    mtime = os.stat(path).st_mtime_ns
    again = compute_surface(ev3, theta0, dirs, grid, path, PROV, {"a": 1})
    assert ev3.forward_passes == 0 and os.stat(path).st_mtime_ns == mtime  # finished store: a no-op
    np.testing.assert_array_equal(again["train_loss"], res["train_loss"])


@pytest.mark.parametrize(
    "change, reason",
    [
        ("coords", "coordinates"),
        ("directions", "directions"),
        ("theta0", "centre"),
        ("config", "job config"),
        ("metrics", "metric names"),
    ],
)
def test_store_made_for_something_else_is_refused_with_the_reason(tmp_path, change, reason):
    model, flat, theta0, dirs, grid = surface_case()
    x, y = data()
    path = tmp_path / "s.h5"
    compute_surface(Evaluator(model, (x, y)), theta0, dirs, grid, path, PROV, {"a": 1})
    before = path.read_bytes()
    kw = dict(theta0=theta0, dirs=dirs, grid=grid, config={"a": 1}, ev=Evaluator(model, (x, y)))
    if change == "coords":
        kw["grid"] = grid2d((-1, 1, 4), (-0.5, 0.6, 3))
    elif change == "directions":
        kw["dirs"] = dirs.flip(0)
    elif change == "theta0":
        kw["theta0"] = theta0 + 1e-3
        kw["ev"].flat.set_(kw["theta0"])
    elif change == "config":
        kw["config"] = {"a": 2}
    else:
        kw["ev"] = Evaluator(model, (x, y), test=data(10, 4))
    with pytest.raises(StoreMismatch, match=reason) as err:
        compute_surface(kw["ev"], kw["theta0"], kw["dirs"], kw["grid"], path, PROV, kw["config"])
    assert "refusing to mix" in str(err.value)
    assert path.read_bytes() == before  # untouched


def test_failed_write_leaves_the_previous_file_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "s.h5"
    dirs = np.eye(2, 5)
    store = PointStore(path, line(-1, 1, 4), dirs[:1], ["train_loss"], PROV, {"a": 1})
    store.record(0, {"train_loss": 1.5})
    store.flush()
    before = path.read_bytes()

    def broken_write(self, f):
        f.create_dataset("coords", data=self.coords)  # half a file, then the disk "fails"
        raise OSError("disk full")

    store.record(1, {"train_loss": 2.5})
    monkeypatch.setattr(PointStore, "_write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        store.flush()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    kept = load_store(path)
    assert kept.done.tolist() == [True, False, False, False] and kept.metrics["train_loss"][0] == 1.5


def test_flush_every_n_points_or_t_seconds(tmp_path, monkeypatch):
    store = PointStore(
        tmp_path / "s.h5", line(0, 1, 10), np.ones((1, 3)), ["train_loss"], {}, {}, flush_every=3, flush_seconds=3600
    )
    flushed = [store.record(i, {"train_loss": float(i)}) or store.maybe_flush() for i in range(7)]
    assert flushed == [False, False, True, False, False, True, False]
    assert load_store(store.path).done.sum() == 6
    clock = {"t": 1000.0}
    monkeypatch.setattr("lsx.landscape.engine.storage.time.monotonic", lambda: clock["t"])
    timed = PointStore(
        tmp_path / "t.h5", line(0, 1, 10), np.ones((1, 3)), ["train_loss"], {}, {}, flush_every=100, flush_seconds=5
    )
    timed.record(0, {"train_loss": 0.0})
    assert not timed.maybe_flush()
    clock["t"] += 6
    timed.record(1, {"train_loss": 1.0})
    assert timed.maybe_flush() and load_store(timed.path).done.sum() == 2


def test_store_alone_reproduces_any_point(tmp_path):
    model, flat, theta0, dirs, grid = surface_case()
    (x, y), test = data(), data(20, 5)
    reference = Evaluator(model, (x, y), test=test)  # keeps a reference layout for the naive check
    res = compute_surface(reference, theta0, dirs, grid, tmp_path / "s.h5", PROV, {"analysis": {"x": [-1, 1, 4]}}, flush_every=5)
    s = load_store(tmp_path / "s.h5")
    assert s.complete and s.grid.kind == "grid" and s.grid.shape == (3, 4)
    np.testing.assert_array_equal(s.grid.x, grid.x)
    np.testing.assert_array_equal(s.grid.y, grid.y)
    assert s.provenance == PROV and s.config == {"analysis": {"x": [-1, 1, 4]}}
    assert s.direction_attrs["kind"] == "random_gaussian" and s.direction_attrs["seeds"] == [1, 2]
    assert s.direction_attrs["center"] == "ckpt/epoch_3.pt"
    assert [e["name"] for e in s.layout] == [e.name for e in flat.entries]
    i = grid.index(3, 0)  # x = +1, y = -0.5
    point = torch.as_tensor(s.point(i))
    torch.testing.assert_close(point, theta0 + dirs[0] - 0.5 * dirs[1], rtol=0, atol=1e-14)
    loss = naive_metrics(model, point, x, y)[0]
    assert s.shaped("train_loss")[0, 3] == pytest.approx(loss, rel=1e-10) == res["train_loss"][0, 3]


def test_nan_results_are_stored_as_nan_and_count_as_done(tmp_path):
    model, flat, theta0, _ = setup(1)
    d = torch.full((flat.numel,), 1e300, dtype=torch.float64)
    res = compute_surface(Evaluator(model, data()), theta0, d, [[0.0], [1e10]], tmp_path / "s.h5", {}, {})
    s = load_store(tmp_path / "s.h5")
    assert s.complete and np.isfinite(s.metrics["train_loss"][0]) and not np.isfinite(s.metrics["train_loss"][1])
    assert res["train_loss"].shape == (2,)


def test_unreadable_or_foreign_file_is_refused(tmp_path):
    model, flat, theta0, dirs, grid = surface_case()
    path = tmp_path / "s.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(StoreMismatch, match="not a readable HDF5"):
        compute_surface(Evaluator(model, data()), theta0, dirs, grid, path, {}, {})
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreMismatch, match="not an lsx-points"):
        compute_surface(Evaluator(model, data()), theta0, dirs, grid, path, {}, {})


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_landscape_engine import data, setup
    from lsx.landscape.engine.evaluator import Evaluator
    from lsx.landscape.engine.grids import grid2d
    from lsx.landscape.engine.surface import compute_surface

    model, flat, theta0, dirs = setup(2)
    model[-1].register_forward_pre_hook(lambda module, args: time.sleep(0.15))  # a slow job: time to kill it
    compute_surface(Evaluator(model, data(), chunk_size=100), theta0, dirs, grid2d((-1, 1, 5), (-1, 1, 4)),
                    {path!r}, {{"kind": "t"}}, {{"a": 1}}, flush_every=1)
    """
)


def test_sigkilled_job_leaves_a_readable_store_and_resumes(tmp_path):
    path = tmp_path / "s.h5"
    script = tmp_path / "job.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(ROOT / "tests"), path=str(path)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if path.exists() and load_store(path).done.sum() >= 3:
                break
            assert proc.poll() is None, "the job ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    partial = load_store(path)  # readable: every flush replaced the file atomically
    n_done = int(partial.done.sum())
    assert 3 <= n_done < 20
    model, flat, theta0, dirs = setup(2)
    grid = grid2d((-1, 1, 5), (-1, 1, 4))
    ev = Evaluator(model, data(), chunk_size=100)
    res = compute_surface(ev, theta0, dirs, grid, path, {"kind": "t"}, {"a": 1})
    assert ev.forward_passes == 20 - n_done
    full = Evaluator(setup(2)[0], data(), chunk_size=100).evaluate(theta0, dirs, grid)
    np.testing.assert_allclose(res["train_loss"], grid.reshape(full["train_loss"]), rtol=1e-12)


def test_omegaconf_config_is_stored_as_plain_json_and_matches_the_same_dict(tmp_path):
    from omegaconf import OmegaConf

    model, flat, theta0, dirs, grid = surface_case()
    plain = {"x": {"min": -1.0, "max": 1.0, "num": 4}, "seeds": [1, 2], "bn": "keep"}
    cfg = OmegaConf.create(plain)  # what jobs pass: ctx.analysis, a DictConfig with nested nodes
    compute_surface(Evaluator(model, data()), theta0, dirs, grid, tmp_path / "s.h5", PROV, cfg)
    assert load_store(tmp_path / "s.h5").config == plain
    ev = Evaluator(model, data())
    compute_surface(ev, theta0, dirs, grid, tmp_path / "s.h5", PROV, plain)  # same config: accepted, nothing to do
    assert ev.forward_passes == 0


def test_local_workers_fill_the_store_block_by_block_with_the_same_values(tmp_path):
    model, flat, theta0, dirs, grid = surface_case()
    x, y = data()
    one = compute_surface(Evaluator(model, (x, y), chunk_size=100), theta0, dirs, grid, tmp_path / "one.h5", PROV, {"a": 1})
    ev = Evaluator(model, (x, y), chunk_size=100)
    flushed = []
    original = PointStore.flush

    def counting_flush(self):
        flushed.append(int(self.done.sum()))
        return original(self)

    PointStore.flush = counting_flush
    try:
        two = compute_surface(ev, theta0, dirs, grid, tmp_path / "two.h5", PROV, {"a": 1}, flush_every=2, workers=2)
    finally:
        PointStore.flush = original
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-6, equal_nan=True)
    assert load_store(tmp_path / "two.h5").done.all()
    assert flushed[:2] == [4, 8]  # blocks of flush_every x workers points reach the file as they finish
    assert torch.equal(flat.get(), theta0)
