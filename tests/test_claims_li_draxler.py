"""Li claim statistics on hand-made job records with known answers (Draxler: tests/test_claims_draxler.py)."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsx.claims.statistics")
from lsx.claims.records import JobRecord  # noqa: E402
from lsx.claims.statistics import InsufficientData, get_statistic  # noqa: E402


def _job(seed, config, metrics, train_loss=0.01, name=None):
    return JobRecord(
        config=config,
        metrics=metrics,
        seed=seed,
        job_dir=Path(name or f"job_{seed}_{id(metrics)}"),
        training=[{"seed": seed, "train_loss": train_loss, "test_acc": metrics.get("_acc", 0.9), "stopped_by": "target"}],
    )


def test_sign_flip_is_positive_only_when_both_signs_are_as_claimed():
    flip = get_statistic("li_sign_flip")
    jobs = [_job(s, {"wd": 0.0}, {"r": r}) for s, r in enumerate([1.3, 1.2, 1.25])]
    jobs += [_job(s, {"wd": 5e-3}, {"r": r}) for s, r in enumerate([0.8, 0.85, 0.82])]
    e = flip(jobs, key="wd", a=0.0, b=5e-3, y="metrics.r", log=True)
    la, lb = np.log([1.3, 1.2, 1.25]).mean(), np.log([0.8, 0.85, 0.82]).mean()
    assert e.value == pytest.approx(min(la, -lb)) and e.lo > 0 and e.n == 3
    # no flip: both ratios above 1 → the estimate is negative (−mean at b)
    same = [_job(s, {"wd": w}, {"r": 1.2 + 0.01 * s}) for s in range(3) for w in (0.0, 5e-3)]
    assert flip(same, key="wd", a=0.0, b=5e-3, y="metrics.r", log=True).hi < 0
    with pytest.raises(InsufficientData, match="not positive"):
        flip([_job(0, {"wd": 0.0}, {"r": -1.0})] + jobs, key="wd", a=0.0, b=5e-3, y="metrics.r", log=True)
    with pytest.raises(InsufficientData, match="no jobs"):
        flip(jobs, key="wd", a=1.0, b=5e-3, y="metrics.r")


def test_trained_difference_excludes_untrained_nets_and_says_why():
    diff = get_statistic("li_trained_difference")
    jobs = []
    for s in range(3):
        jobs.append(_job(s, {"model": {"name": "r56", "shortcut": False}}, {"chaos": 0.5 + 0.01 * s}))
        jobs.append(_job(s, {"model": {"name": "r56", "shortcut": True}}, {"chaos": 0.1 + 0.02 * s}))
    untrained = _job(3, {"model": {"name": "r56", "shortcut": False}}, {"chaos": 5.0}, train_loss=2.0, name="untrained")
    e = diff(
        jobs + [untrained],
        key="model.shortcut",
        a=False,
        b=True,
        y="metrics.chaos",
        max_train_loss=0.1,
        where={"model.name": "r56"},
    )
    assert e.value == pytest.approx(0.4 - 0.01) and e.lo > 0  # the untrained net's 5.0 is not averaged in
    assert [x["job"] for x in e.details["excluded"]] == ["untrained"]
    assert "not trained" in e.details["excluded"][0]["reason"]
    only_untrained = [j for j in jobs if j.config["model"]["shortcut"]] + [untrained]
    with pytest.raises(InsufficientData, match="untrained"):
        diff(only_untrained, key="model.shortcut", a=False, b=True, y="metrics.chaos", max_train_loss=0.1)


def test_convexity_panels_figure_draws_one_map_per_architecture(tmp_path):
    from lsx.claims.figures import get_figure

    jobs = []
    for k, (name, short) in enumerate([("resnet20", True), ("resnet20", False), ("resnet32", False)]):
        d = tmp_path / f"job{k}"
        d.mkdir()
        ratio = np.full((3, 3), np.nan)
        ratio[::2, ::2] = 0.1 * k
        np.savez(d / "convexity.npz", x=np.linspace(-1, 1, 3), y=np.linspace(-1, 1, 3), ratio=ratio)
        jobs.append(
            JobRecord(
                config={"model": {"name": name, "shortcut": short}},
                metrics={},
                seed=0,
                job_dir=d,
                training=[{"train_loss": 0.03}],
            )
        )
    out = get_figure("li_convexity_panels")(jobs, tmp_path / "panels.png")
    assert out.exists() and out.stat().st_size > 1000
