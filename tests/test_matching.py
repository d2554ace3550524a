"""Matched training that counts: the loss the analysis measured decides, a missed target or a spread
above the preset's factor makes the verdict inconclusive unless the claim waives it, and a run that
stopped above its target is named by ``lsx.analyze`` and ``lsx.aggregate``."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import yaml

from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, register_statistic
from lsx.claims.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, check_claims, evaluate_claim


@register_statistic("test_matching_fixed")
def _fixed(jobs, key: str = "", x: str = "", x_max: float | None = None, where: dict | None = None, value: float = 1.0):
    """A statistic whose interval is always above 0: the verdict is decided by matching alone."""
    return Estimate(value, value - 0.5, value + 0.5, len(jobs), "fixed (test)")


CLAIM = {
    "id": "c",
    "statement": "s",
    "statistic": "test_matching_fixed",
    "args": {"key": "optimizer.lr"},
    "decision": {"greater": 0.0},
}


def job(
    seed: int,
    lr: float,
    analysis: float | None,
    summary: float = 0.1,
    target: float | None = None,
    reached: bool | None = None,
    stop_loss: float | None = None,
) -> JobRecord:
    entry = {
        "seed": seed,
        "run_dir": f"/cache/s{seed}_lr{lr}",
        "train_loss": summary,
        "test_acc": 0.9,
        "epochs_run": 5,
        "steps": 50,
        "stopped_by": "target" if reached else "epochs",
        "target_train_loss": target,
        "reached_target": reached,
        "stop_train_loss": stop_loss,
    }
    if analysis is not None:
        entry.update(analysis_train_loss=analysis, analysis_bn="upbn", analysis_epoch=5)
    return JobRecord(
        config={"seed": seed, "optimizer": {"lr": lr}},
        metrics={},
        seed=seed,
        job_dir=Path(f"/tmp/job_s{seed}_lr{lr}"),
        training=[entry],
    )


def grid(analysis: dict[float, float], summary: dict[float, float] | None = None, seeds=range(3), **kw) -> list[JobRecord]:
    summary = summary or {lr: 0.1 for lr in analysis}
    return [job(s, lr, analysis[lr], summary[lr], **kw) for s in seeds for lr in analysis]


def test_analysis_losses_beyond_the_factor_make_the_verdict_inconclusive():
    res = evaluate_claim(CLAIM, grid({1e-3: 0.01, 1e-2: 0.5}), train_loss_ratio=3.0)
    assert res.verdict == INCONCLUSIVE and res.reason.startswith("unmatched training: train losses differ 50x (> the preset's 3")
    assert "optimizer.lr=0.01] 0.5" in res.reason and "optimizer.lr=0.001] 0.01" in res.reason  # which runs
    assert "Without this check: reproduced" in res.reason
    m = res.to_dict()["matching"]
    assert m["flag"] and m["spread"] == pytest.approx(50.0) and m["measure"] == "analysis_train_loss (bn: upbn)"
    assert m["missed_target"] == [] and m["waived"] is None
    assert all(r["flag"] and r["measure"] == "analysis_train_loss" for r in res.compared)
    matched = evaluate_claim(CLAIM, grid({1e-3: 0.1, 1e-2: 0.2}), train_loss_ratio=3.0)
    assert matched.verdict == REPRODUCED and not matched.matching.flag and matched.matching.reason == ""


def test_the_analysis_loss_is_compared_not_the_eval_summary_loss():
    # stale BN statistics: the summary (eval-mode) losses differ 200x, the losses the analysis measured 2x
    stale = evaluate_claim(CLAIM, grid({1e-3: 0.02, 1e-2: 0.04}, {1e-3: 0.01, 1e-2: 2.0}), train_loss_ratio=3.0)
    assert stale.verdict == REPRODUCED and not stale.matching.flag and stale.matching.spread == pytest.approx(2.0)
    # and the other way round: equal summaries, analysis losses 10x apart
    hidden = evaluate_claim(CLAIM, grid({1e-3: 0.01, 1e-2: 0.1}, {1e-3: 0.05, 1e-2: 0.05}), train_loss_ratio=3.0)
    assert hidden.verdict == INCONCLUSIVE and "differ 10x" in hidden.reason


def test_jobs_without_the_analysis_loss_fall_back_to_the_summary_and_say_so():
    res = evaluate_claim(CLAIM, grid({1e-3: None, 1e-2: None}, {1e-3: 0.01, 1e-2: 0.5}), train_loss_ratio=3.0)
    assert res.verdict == INCONCLUSIVE and res.matching.measure.startswith("train_loss (summary, eval mode")
    assert "train_loss (summary" in res.reason
    mixed = evaluate_claim(CLAIM, [job(0, 1e-3, 0.1), job(1, 1e-2, None, summary=0.15)], train_loss_ratio=3.0)
    assert "summary train_loss for the runs of 1 job(s)" in mixed.matching.measure and not mixed.matching.flag


def test_optima_a_measured_job_did_not_measure_are_named_not_silently_dropped():
    # a curve job measures its centre (seed u) only; its far endpoint (seed u + 1000) has no analysis loss
    jobs = [job(s, 1e-3, 0.1) for s in range(6)]
    for j in jobs:
        far = dict(j.training[0], seed=j.seed + 1000, run_dir=f"/cache/s{j.seed + 1000}")
        del far["analysis_train_loss"]
        j.training.append(far)
    res = evaluate_claim(CLAIM, jobs, train_loss_ratio=3.0)
    assert res.verdict == REPRODUCED and res.matching.measure == (
        "analysis_train_loss (bn: upbn); 6 optima the analysis did not measure (seeds 1000, 1001, 1002, 1003, 1004, "
        "1005) are not compared"
    )
    assert [r["compared_loss"] for r in res.compared] == [0.1, None] * 6
    # report.json keeps each set's matching result beside its verdict (the claim entry keeps the declared waiver)
    from lsx.claims.report import _set_dict

    stored = _set_dict(CLAIM, res, [], Path("/tmp/unused.png"), Path("/tmp"))
    assert stored["matching"]["measure"] == res.matching.measure and stored["matching"]["spread"] == pytest.approx(1.0)


def test_a_missed_target_makes_the_verdict_inconclusive_whatever_the_factor():
    jobs = grid({1e-3: 0.05, 1e-2: 0.05}, target=0.05, reached=True)
    jobs[0] = job(0, 1e-3, 0.05, target=0.05, reached=False, stop_loss=0.41)
    res = evaluate_claim(CLAIM, jobs, train_loss_ratio=None)
    assert res.verdict == INCONCLUSIVE and res.reason.startswith("unmatched training: 1 of 6 compared run(s) missed")
    assert "seed 0 [optimizer.lr=0.001] at train loss 0.41 > 0.05 after 5 epochs (stopped by epochs)" in res.reason
    (missed,) = res.to_dict()["matching"]["missed_target"]
    assert missed["seed"] == 0 and missed["stop_train_loss"] == 0.41 and missed["target_train_loss"] == 0.05
    assert evaluate_claim(CLAIM, grid({1e-3: 0.05, 1e-2: 0.05}, target=0.05, reached=True)).verdict == REPRODUCED


def test_a_waiver_keeps_the_verdict_and_is_reported():
    why = "equal epochs by design: the paper compares batch sizes at a fixed budget (Fig. 3)"
    claim = dict(CLAIM, matching={"waive": why})
    assert check_claims("p", [claim])[0]["matching"] == {"waive": why}
    res = evaluate_claim(claim, grid({1e-3: 0.01, 1e-2: 0.5}), train_loss_ratio=3.0)
    assert res.verdict == REPRODUCED and f"waived by the claim: {why}" in res.reason
    assert res.to_dict()["matching"]["waived"] == why and res.matching.flag
    worse = evaluate_claim(dict(claim, decision={"less": 0.0}), grid({1e-3: 0.01, 1e-2: 0.5}), train_loss_ratio=3.0)
    assert worse.verdict == NOT_REPRODUCED  # a waiver keeps any verdict, not only a favourable one
    unflagged = evaluate_claim(claim, grid({1e-3: 0.1, 1e-2: 0.1}), train_loss_ratio=3.0)
    assert unflagged.matching.waived is None and "waived" not in unflagged.reason


@pytest.mark.parametrize(
    "matching, msg",
    [
        ("yes", "matching 'yes' is malformed"),
        ({"waive": " "}, "must be a non-empty reason"),
        ({"waive": "x", "ratio": 9}, "is malformed"),
    ],
)
def test_a_bad_waiver_is_refused_with_one_line(matching, msg):
    with pytest.raises(ValueError, match=msg) as err:
        check_claims("p", [dict(CLAIM, matching=matching)])
    assert "\n" not in str(err.value) and "valid: matching: {waive:" in str(err.value)


def test_results_from_older_code_read_the_target_from_the_run(tmp_path):
    run = tmp_path / "cache" / "run"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(
        json.dumps({"config": {"training": {"epochs": 2, "target_train_loss": 0.05}}, "stopped_by": "epochs", "epochs_run": 2})
    )
    (run / "metrics.csv").write_text("epoch,train/loss,train/acc,val/loss,val/acc,lr\n1,0.9,0.5,,,0.1\n2,0.41,0.8,,,0.1\n")
    d = tmp_path / "job"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump({"seed": 0}))
    (d / "results.json").write_text(
        json.dumps(
            {
                "seed": 0,
                "training": [{"seed": 0, "run_dir": str(run), "train_loss": 0.3, "epochs_run": 2, "stopped_by": "epochs"}],
            }
        )
    )
    (t,) = JobRecord.from_dir(d).training
    assert (t["target_train_loss"], t["reached_target"], t["stop_train_loss"]) == (0.05, False, 0.41)


# ----------------------------------------------------------------------------- a real tiny run that misses its target
FAST = (
    "debug=fast",
    "trainer.progress_bar=false",
    "data.batch_size=32",
    "training.target_train_loss=1e-6",
    "analysis=surface2d",
    "analysis.x.num=3",
    "analysis.y.num=3",
)


def test_analyze_warns_and_aggregate_lists_a_run_that_missed_its_target(compose, tmp_path, caplog, capsys):
    from lsx.cli.aggregate import main as aggregate_main
    from lsx.cli.analyze import run_analysis

    sweep = tmp_path / "sweep"
    results = []
    c = compose(*FAST)
    # two points of a sweep (a 3- and a 5-column grid) on the same cached optimum: each job warns about it
    # (a cached job reached twice would count once: lsx.tracking.aggregate)
    for point, cfg in (("0", c), ("1", compose(*FAST, "analysis.x.num=5"))):
        (sweep / point / ".hydra").mkdir(parents=True)
        with caplog.at_level(logging.WARNING, logger="lsx.analyze"):
            results.append(run_analysis(cfg, sweep / point, progress=False))
    (entry,) = results[0]["training"]
    # the recorded analysis loss is the surface's own centre point, in its BN mode
    assert entry["analysis_train_loss"] == results[0]["metrics"]["center_train_loss"]
    assert entry["analysis_bn"] == c["analysis"]["bn"] and entry["analysis_epoch"] == 1
    assert (entry["target_train_loss"], entry["reached_target"], entry["stopped_by"]) == (1e-6, False, "epochs")
    curve = list(csv.DictReader(open(Path(entry["run_dir"]) / "metrics.csv")))
    assert entry["stop_train_loss"] == pytest.approx(float(curve[-1]["train/loss"]))
    warned = [r.getMessage() for r in caplog.records if "missed training.target_train_loss" in r.getMessage()]
    assert len(warned) == 2 and entry["run_dir"] in warned[0]
    assert f"final epoch's train loss {entry['stop_train_loss']:.4g} after 1 epochs (stopped by epochs)" in warned[0]

    assert aggregate_main([str(sweep), "--y", "metrics.center_train_loss"]) == 0
    out = capsys.readouterr().out
    assert "2 job(s) used optima that missed training.target_train_loss" in out
    assert out.count("missed target: ") == 2 and entry["run_dir"] in out
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [r["reached_target"] for r in rows] == ["False", "False"]


@pytest.mark.parametrize(
    "target, stopped_by, reached",
    [(None, "epochs", None), (0.05, "epochs", False), (0.05, "max_steps", False), (0.05, "target", True)],
)
def test_a_run_records_whether_it_reached_its_target(tmp_path, target, stopped_by, reached):
    from lsx.training.runner import TrainedRun

    (tmp_path / "metrics.csv").write_text(
        "epoch,train/loss,train/acc,val/loss,val/acc,lr\n1,0.9,0.5,,,0.1\n2,0.04,0.9,,,0.1\n" "3,0.03,0.9,,,0.1\n"
    )
    run = TrainedRun(
        tmp_path,
        "h",
        {"seed": 0, "training": {"epochs": 3, "target_train_loss": target}},
        {},
        {"train_loss": 0.5},
        {"epochs_run": 2, "steps": 20, "stopped_by": stopped_by},
    )
    rec = run.record()
    assert (rec["target_train_loss"], rec["reached_target"], rec["stop_train_loss"]) == (target, reached, 0.04)


def test_only_the_jobs_the_claim_compares_are_checked():
    # x_max leaves the "too strong" end out of the statistic, and out of the matching check
    ranged = dict(CLAIM, args={"key": "", "x": "optimizer.lr", "x_max": 1e-2})
    jobs = grid({1e-3: 0.05, 1e-2: 0.06}) + [job(s, 0.1, 2.3, target=0.05, reached=False, stop_loss=2.3) for s in range(3)]
    assert evaluate_claim(ranged, jobs).verdict == REPRODUCED
    assert evaluate_claim(dict(ranged, args={"key": "", "x": "optimizer.lr"}), jobs).verdict == INCONCLUSIVE
    # `where` fixes config values: other settings' runs are not compared
    where = dict(CLAIM, args={"key": "", "where": {"optimizer.lr": 1e-3}})
    assert evaluate_claim(where, grid({1e-3: 0.05, 1e-2: 5.0})).verdict == REPRODUCED
