"""A cache hit computed by other code: warned about by default, recomputed on request, kept on purpose."""

from __future__ import annotations

import json
import logging

import pytest

TINY = (
    "analysis=surface2d",
    "training.epochs=1",
    "analysis.x.num=3",
    "analysis.y.num=3",
    "model=mlp",
    "model.hidden=8",
    "trainer.progress_bar=false",
)


def _age(path, key="code_fingerprint"):
    data = json.loads(path.read_text())
    data[key] = "0000old00000code"
    path.write_text(json.dumps(data))


def test_stale_job_and_model_warn_recompute_or_keep(compose, tmp_path, caplog):
    from lsx.cli.analyze import run_analysis
    from lsx.training.runner import run_dir_for
    from lsx.utils.fingerprint import job_fingerprint, training_fingerprint

    first = run_analysis(compose(*TINY), tmp_path / "r1", progress=False)
    job_dir = first["job_dir"]
    assert first["code_fingerprint"] == job_fingerprint("lsx.jobs.surface")
    run_dir, _ = run_dir_for(compose(*TINY))
    assert json.loads((run_dir / "summary.json").read_text())["code_fingerprint"] == training_fingerprint()

    _age(__import__("pathlib").Path(job_dir) / "results.json")
    with caplog.at_level(logging.WARNING, logger="lsx"):
        warned = run_analysis(compose(*TINY), tmp_path / "r2", progress=False)
    assert warned["cached"] and "was computed by other code" in caplog.text and "reused" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lsx"):
        kept = run_analysis(compose(*TINY, "cache.stale=keep"), tmp_path / "r3", progress=False)
    assert kept["cached"] and "other code" not in caplog.text

    _age(run_dir / "summary.json")
    redone = run_analysis(compose(*TINY, "cache.stale=recompute"), tmp_path / "r4", progress=False)
    assert not redone["cached"] and redone["code_fingerprint"] == job_fingerprint("lsx.jobs.surface")
    assert json.loads((run_dir / "summary.json").read_text())["code_fingerprint"] == training_fingerprint()  # retrained
    assert redone["metrics"]["center_train_loss"] == pytest.approx(first["metrics"]["center_train_loss"], abs=0)


def test_bad_stale_mode_is_one_line():
    from lsx.utils.fingerprint import check_stale_mode

    with pytest.raises(ValueError, match="cache.stale must be one of warn, recompute, keep, got 'sometimes'"):
        check_stale_mode("sometimes")


def test_fingerprint_follows_the_code(tmp_path, monkeypatch):
    from lsx.utils import fingerprint as fp

    pkg = tmp_path / "lsx"
    (pkg / "training").mkdir(parents=True)
    (pkg / "training" / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(fp, "_PACKAGE", pkg)
    fp.source_fingerprint.cache_clear()
    before = fp.source_fingerprint(("training",))
    (pkg / "training" / "a.py").write_text("x = 2\n")
    fp.source_fingerprint.cache_clear()
    assert fp.source_fingerprint(("training",)) != before
    fp.source_fingerprint.cache_clear()
