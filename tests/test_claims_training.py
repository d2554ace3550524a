"""Matched training: the stop rule (target train loss, max_steps, epochs cap), its record in
summary.json and in each analysis job's results.json, its determinism and its hash behaviour."""

from __future__ import annotations

import json

import pytest
import torch

from lsx.config import config_hash, training_config
from lsx.jobs.base import job_key
from lsx.training.checkpoints import load_checkpoint
from lsx.training.runner import build_data, train

FAST = ("debug=fast", "trainer.progress_bar=false", "data.batch_size=32")  # 128 examples: 4 steps per epoch


def _losses(run):
    return [r["train/loss"] for r in run.learning_curve()]


def _stop(run):
    return {k: run.stop[k] for k in ("epochs_run", "steps", "stopped_by")}


def test_stops_at_the_first_epoch_at_or_below_the_target(compose):
    full = train(compose(*FAST, "training.epochs=6", "training.checkpoint_every=1"), progress=False)
    losses = _losses(full)
    target = losses[3] + 1e-9  # the 4th epoch's train loss: reached at epoch 4 (losses fall here)
    first = next(i for i, v in enumerate(losses) if v <= target) + 1
    run = train(
        compose(*FAST, "training.epochs=6", f"training.target_train_loss={target}", "training.checkpoint_epochs=[0,2,6]"),
        progress=False,
    )
    assert _stop(run) == {"epochs_run": first, "steps": 4 * first, "stopped_by": "target"}
    assert run.stop["stop_loss"] == pytest.approx(losses[first - 1]) and run.stop_train_loss() == run.stop["stop_loss"]
    assert first <= 4 and sorted(run.checkpoints) == sorted({0, 2, first}) and run.final_epoch == first  # no epoch 6
    assert len(run.learning_curve()) == first
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["stopped_by"] == "target" and summary["epochs_run"] == first
    # the stop epoch's weights equal the uncapped run's weights at that epoch (same trajectory)
    a, b = load_checkpoint(run.final).state_dict, load_checkpoint(full.checkpoints[first]).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match=r"no checkpoint at epoch 6 \(training stopped at epoch \d by target\)"):
        run.load(6)
    assert full.stop["stopped_by"] == "epochs" and full.stop["epochs_run"] == 6


def test_unreached_target_caps_at_epochs(compose):
    run = train(compose(*FAST, "training.epochs=2", "training.target_train_loss=1e-6"), progress=False)
    assert _stop(run) == {"epochs_run": 2, "steps": 8, "stopped_by": "epochs"} and run.final_epoch == 2
    assert run.stop["stop_loss"] > 1e-6  # the last loss compared with the target


def test_max_steps_stops_mid_epoch_and_saves_that_epoch(compose):
    run = train(compose(*FAST, "training.epochs=5", "training.max_steps=6"), progress=False)
    assert _stop(run) == {"epochs_run": 2, "steps": 6, "stopped_by": "max_steps"} and run.stop["stop_loss"] is None
    assert sorted(run.checkpoints) == [0, 2]
    assert load_checkpoint(run.final).epoch == 2 and run.summary["train_loss"] > 0


def test_stop_rule_is_bitwise_deterministic(compose, tmp_path):
    c = compose(*FAST, "training.epochs=6", "training.target_train_loss=1.5", "training.max_steps=20")
    a = train(c, progress=False)
    b = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "other"))), progress=False)
    assert a.run_dir != b.run_dir and a.stop == b.stop
    wa, wb = load_checkpoint(a.final).state_dict, load_checkpoint(b.final).state_dict
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_stop_keys_hash_only_when_set(compose):
    plain = compose(*FAST)
    assert "target_train_loss" not in training_config(plain)["training"]  # old caches keep their keys
    target = compose(*FAST, "training.target_train_loss=0.1")
    steps = compose(*FAST, "training.max_steps=10")
    hashes = {config_hash(training_config(c)) for c in (plain, target, steps)}
    assert len(hashes) == 3 and len({job_key(dict(c, analysis={"job": "x"})) for c in (plain, target, steps)}) == 3
    assert job_key(dict(plain, reproduce={"seeds": [0]}, claims=[{"id": "x"}])) == job_key(plain)


def _landscape_loss(c, ckpt, bn="keep"):
    """The train loss a job with ``bn`` records at ``ckpt`` (lsx.jobs.landscape_common.record_centre_loss)."""
    from lsx.landscape.engine.evaluator import Evaluator

    ev = Evaluator(ckpt.build_model(), train=build_data(c).prepare().landscape_subset().train, bn_policy=bn, fuse=False)
    return ev.evaluate_at(ev.flat.get(), splits=("train",))["train_loss"]


def test_landscape_target_stops_mid_epoch_at_the_loss_jobs_measure(compose):
    """``target_on: landscape`` compares the loss an analysis measures (eval mode, landscape subset), checked
    every step near the target: the run stops at the first such step, and measuring does not perturb training
    (the weights equal those of a run told to stop at that step)."""
    full = train(compose(*FAST, "training.epochs=6", "training.checkpoint_every=1"), progress=False)
    c0 = compose(*FAST)
    target = _landscape_loss(c0, load_checkpoint(full.checkpoints[3])) * 1.05  # reached by epoch 3
    over = (*FAST, "training.epochs=6", f"training.target_train_loss={target}", "training.target_on=landscape")
    run = train(compose(*over, "training.target_check_every=1"), progress=False)
    assert run.stop["stopped_by"] == "target" and run.stop["stop_loss"] <= target and run.stop["steps"] <= 12
    assert run.stop_train_loss() == run.stop["stop_loss"]
    assert _landscape_loss(c0, load_checkpoint(run.final)) == pytest.approx(run.stop["stop_loss"], rel=1e-5)
    twin = train(compose(*FAST, "training.epochs=6", f"training.max_steps={run.stop['steps']}"), progress=False)
    a, b = load_checkpoint(run.final).state_dict, load_checkpoint(twin.final).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    at_epoch_ends = train(compose(*over), progress=False)  # no check_every: epoch ends only
    assert at_epoch_ends.stop["stopped_by"] == "target" and at_epoch_ends.stop["steps"] % 4 == 0
    assert at_epoch_ends.stop["steps"] >= run.stop["steps"]


def test_landscape_target_keys_the_landscape_subset(compose):
    """Where the run stops depends on the landscape subset only under a landscape target: only then is it hashed."""
    key = lambda *o: config_hash(training_config(compose(*FAST, "training.target_train_loss=0.5", *o)))  # noqa: E731
    assert key("data.landscape_train=50") == key("data.landscape_train=60")
    on = "training.target_on=landscape"
    assert key(on, "data.landscape_train=50") != key(on, "data.landscape_train=60")
    assert key(on, "data.landscape_seed=1") != key(on, "data.landscape_seed=2")
    assert key(on) != key() != key(on, "training.target_check_every=2")


@pytest.mark.parametrize(
    "bad, msg",
    [
        ("training.target_train_loss=0", "target_train_loss must be > 0"),
        ("training.max_steps=0", "max_steps must be >= 1"),
        ("training.target_on=eval", "target_on must be one of running, landscape, landscape_upbn"),
        ("training.target_check_every=3", "target_check_every needs training.target_on=landscape"),
        ("training.target_check_every=0", "target_check_every must be >= 1"),
    ],
)
def test_bad_stop_rule_values(compose, bad, msg):
    with pytest.raises(ValueError, match=msg):
        train(compose(*FAST, bad), progress=False)


def test_analysis_results_record_the_optima_used(compose, lsx_dirs, tmp_path):
    from lsx.cli.analyze import run_analysis

    c = compose(*FAST, "analysis=surface2d", "analysis.x.num=3", "analysis.y.num=3", "training.max_steps=3")
    res = run_analysis(c, tmp_path / "run", progress=False)
    (entry,) = res["training"]
    assert entry["seed"] == 0 and entry["stopped_by"] == "max_steps" and entry["steps"] == 3 and entry["epochs_run"] == 1
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "run_dir"} <= set(entry) and entry["test_acc"] is not None
    again = run_analysis(c, tmp_path / "run2", progress=False)  # cached job: the record comes from its results.json
    assert again["training"] == res["training"]


class _Strategy:
    @staticmethod
    def reduce_boolean_decision(decision, all=False):
        return decision


class _Trainer:
    def __init__(self) -> None:
        self.global_step, self.current_epoch, self.should_stop, self.strategy = 0, 0, False, _Strategy()


def _drive(rule, loss_at_step, steps_per_epoch: int = 10, epochs: int = 20):
    """The stop rule's hooks as Lightning calls them, on a loss that is a function of the optimizer step."""
    import types

    trainer, module = _Trainer(), types.SimpleNamespace(model=None)
    rule.measure = lambda _model: loss_at_step(trainer.global_step)
    for epoch in range(epochs):
        trainer.current_epoch = epoch
        for _ in range(steps_per_epoch):
            trainer.global_step += 1
            rule.on_train_batch_end(trainer, module, None, None, 0)
            if trainer.should_stop:
                break
        rule.on_train_epoch_end(trainer, module)
        if trainer.should_stop:
            return trainer


def test_landscape_target_projects_a_fast_fall_and_checks_finely_before_it(monkeypatch):
    """A loss that falls 30x per epoch jumps from 10x the target to 1/3 of it between two epoch ends: the
    last two epoch ends' rate projects that, so the fine checks start an epoch early and the run stops within a
    step of the target (the window alone, 4x the target, would have stopped it at 1/3 of the target)."""
    from lsx.training import callbacks
    from lsx.training.callbacks import StopRule

    fall = lambda step: 9000.0 * (1 / 30) ** (step / 10)  # noqa: E731  (epoch ends: 300, 10, 0.33, ...)
    rule = StopRule(1.0, None, 50, target_on="landscape", check_every=1, measure=lambda m: 0.0)
    _drive(rule, fall)
    one_step = (1 / 30) ** 0.1
    assert rule.stopped_by == "target" and one_step < rule.outcome["stop_loss"] <= 1.0
    state = rule.state_dict()
    again = StopRule(1.0, None, 50, target_on="landscape", check_every=1, measure=lambda m: 0.0)
    again.load_state_dict(state)  # a resume keeps the projection's history, the outcome stays as it was
    assert again.epoch_end_losses == rule.epoch_end_losses and again.outcome == rule.outcome
    assert again.lowest_check == rule.lowest_check and "epoch_end_losses" not in rule.outcome

    monkeypatch.setattr(StopRule, "near_target", lambda self: (self.outcome["stop_loss"] or 1e9) <= callbacks.FINE_CHECKS_WITHIN)
    window_only = StopRule(1.0, None, 50, target_on="landscape", check_every=1, measure=lambda m: 0.0)
    _drive(window_only, fall)
    assert window_only.outcome["stop_loss"] < 0.4  # an epoch end, a whole epoch's fall past the target


def test_fine_checks_stay_on_after_a_check_inside_the_window():
    """A noisy loss (small-batch SGD: li_fig7's swung 0.005-0.044 within an epoch at a 0.002 target) dips into the
    window, bounces above it at the next epoch ends (the projection sees no fall), then drops 20x within one epoch:
    the fine checks, on since the dip, stop the run at the first step at or below the target, not at the epoch end."""
    from lsx.training.callbacks import StopRule

    def noisy(step: int) -> float:
        epoch, k = divmod(step - 1, 10)
        if epoch < 3:
            return (40.0, 16.0, 6.0)[epoch]  # epoch ends 40, 16, 6: the projection (6 * 6/16 = 2.25) opens the window
        if epoch == 3:
            return 3.0 if k == 4 else 12.0  # one check inside the window (4), the epoch end above it
        if epoch < 6:
            return 12.0  # epoch ends with no fall: the projection alone would close the window
        return 12.0 * 0.7 ** (k + 1)  # epoch 7 falls 35x: 0.99 at its 7th step, 0.34 at its end

    rule = StopRule(1.0, None, 50, target_on="landscape", check_every=1, measure=lambda m: 0.0)
    _drive(rule, noisy)
    assert rule.stopped_by == "target" and 0.7 < rule.outcome["stop_loss"] <= 1.0 and rule.outcome["steps"] == 67
    assert rule.lowest_check == rule.outcome["stop_loss"]
