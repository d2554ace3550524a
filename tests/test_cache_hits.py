"""A finished run found in the cache returns without importing the plotting stack (a finished analysis job:
test_jobs_li.py::test_quickstart_demo_end_to_end_and_rerun_is_noop)."""

import json

import pytest
from conftest import run_module

TINY = ("debug=fast", "trainer.progress_bar=false")
PROFILE = {"PYTHONPROFILEIMPORTTIME": "1"}  # Python lists every import on stderr


def _imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_train_cache_hit_copies_the_learning_curve_without_matplotlib(lsx_dirs):
    cache, out = lsx_dirs
    first = run_module("lsx.train", *TINY, env={**PROFILE, "OMP_NUM_THREADS": "2"})
    assert first.returncode == 0, first.stderr[-3000:]
    assert "matplotlib" in _imported(first.stderr)  # the curve is drawn once, into the cached run
    again = run_module("lsx.train", *TINY, env={**PROFILE, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "matplotlib" not in _imported(again.stderr)
    pngs = sorted(out.glob("runs/*/*/learning_curve.png"))
    assert len(pngs) == 2 and pngs[0].read_bytes() == pngs[1].read_bytes()
    # provenance: the hit says which thread count trained the weights, and which one read them
    hit = json.loads(sorted(out.glob("runs/*/*/results.json"))[-1].read_text())
    assert hit["cached"] and hit["torch_threads"] == 2 and hit["torch_threads_this_process"] == 1
    assert hit["torch_version"]


def test_unknown_job_is_refused_before_anything_runs():
    from lsx.jobs import registry  # noqa: F401
    from lsx.jobs.base import lazy_job

    with pytest.raises(ValueError, match="unknown analysis job 'nope'; valid jobs: .*surface2d"):
        lazy_job("nope")
