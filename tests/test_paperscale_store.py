"""GPU knobs and provenance: analysis.points_per_pass is a validated, unhashed key, and a point store records
the device and points_per_pass it was evaluated with, so a resume on another path is refused in one line."""

import h5py
import pytest
from test_landscape_engine import data
from test_landscape_storage import PROV, surface_case

from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.storage import StoreMismatch
from lsx.landscape.engine.surface import compute_surface


def _partial_store(tmp_path, points_per_pass: int):
    """A store killed after 4 of 12 points, evaluated with ``points_per_pass`` points per pass."""
    model, flat, theta0, dirs, grid = surface_case()
    x, y = data()
    path = tmp_path / "s.h5"
    ev = Evaluator(model, (x, y), points_per_pass=points_per_pass)
    compute_surface(ev, theta0, dirs, grid, path, PROV, {"a": 1}, flush_every=2)
    with h5py.File(path, "r+") as f:  # as if killed: only the first points are done
        done = f["done"][()]
        done[4:] = False
        f["done"][...] = done
    return model, theta0, dirs, grid, path, (x, y)


def test_resume_with_another_points_per_pass_is_refused_in_one_line(tmp_path):
    model, theta0, dirs, grid, path, xy = _partial_store(tmp_path, points_per_pass=3)
    with h5py.File(path, "r") as f:
        assert '"points_per_pass": 3' in f.attrs["runtime"] and '"device": "cpu"' in f.attrs["runtime"]
    before = path.read_bytes()
    with pytest.raises(
        StoreMismatch,
        match="evaluated with device=cpu, points_per_pass=3, this run uses " "device=cpu, points_per_pass=1: refusing to mix",
    ) as err:
        compute_surface(Evaluator(model, xy, points_per_pass=1), theta0, dirs, grid, path, PROV, {"a": 1})
    assert "\n" not in str(err.value) and path.read_bytes() == before
    # the same path resumes
    res = compute_surface(Evaluator(model, xy, points_per_pass=3), theta0, dirs, grid, path, PROV, {"a": 1})
    assert res["train_loss"].shape == (3, 4)


def test_a_store_from_before_the_runtime_was_recorded_still_resumes(tmp_path):
    model, theta0, dirs, grid, path, xy = _partial_store(tmp_path, points_per_pass=1)
    with h5py.File(path, "r+") as f:
        del f.attrs["sig_runtime"], f.attrs["runtime"]
    compute_surface(Evaluator(model, xy, points_per_pass=2), theta0, dirs, grid, path, PROV, {"a": 1})
    with h5py.File(path, "r") as f:
        assert f["done"][()].all() and '"points_per_pass": 2' in f.attrs["runtime"]


def test_points_per_pass_key_is_validated_and_not_hashed(compose):
    from lsx.cli.validate import validate_config
    from lsx.jobs.base import job_key

    auto, four = compose("analysis=surface2d"), compose("analysis=surface2d", "analysis.points_per_pass=4")
    assert auto["analysis"]["points_per_pass"] is None and job_key(auto) == job_key(four)
    validate_config(four)
    for bad in ("0", "-2"):
        with pytest.raises(ValueError, match=f"analysis.points_per_pass must be >= 1, got {bad}"):
            validate_config(compose("analysis=surface2d", f"analysis.points_per_pass={bad}"))


def test_the_job_evaluator_takes_points_per_pass_from_the_config(compose):
    from types import SimpleNamespace

    from lsx.jobs.landscape_common import build_evaluator

    model = surface_case()[0]
    x, y = data()
    subset = SimpleNamespace(train=(x, y), test=None)
    ctx = SimpleNamespace(analysis={"points_per_pass": 5}, landscape_subset=lambda: subset, loss_fn=lambda: None)
    assert build_evaluator(ctx, model, "keep", None).points_per_pass == 5
    ctx.analysis = {"points_per_pass": None}
    assert build_evaluator(ctx, model, "keep", None).points_per_pass == 1  # automatic on CPU
