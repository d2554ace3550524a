"""Training: bitwise determinism, the config-hash cache, resume, and each bad input's error."""

import json

import lightning as L
import pytest
import torch

from lsx.training.checkpoints import CheckpointError, check_same_architecture, load_checkpoint
from lsx.training.module import NonFiniteLossError
from lsx.training.runner import check_model_fits, train

FAST = ("debug=fast", "trainer.progress_bar=false")


def _weights(run, epoch=None):
    return load_checkpoint(run.checkpoints[epoch if epoch is not None else run.final_epoch]).state_dict


def test_same_seed_is_bitwise_equal_and_seed_zero_is_valid(compose, tmp_path):
    c = compose(*FAST, "seed=0", "training.epochs=2")
    a = train(c, progress=False)
    c2 = dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "other")))
    b = train(c2, progress=False)
    assert a.run_dir != b.run_dir
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(_weights(a, 0)["0.weight"], wa["0.weight"])  # it did train
    other = train(compose(*FAST, "seed=1", "training.epochs=2"), progress=False)
    assert not torch.equal(_weights(other)["0.weight"], wa["0.weight"])


def test_checkpoints_at_configured_epochs_rebuild_their_model(compose):
    run = train(compose(*FAST, "training.epochs=3", "training.checkpoint_epochs=[0,1]"), progress=False)
    assert sorted(run.checkpoints) == [0, 1, 3]
    ck = load_checkpoint(run.final)
    model = ck.build_model()  # needs no other file
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    assert ck.config["seed"] == 0 and ck.config_hash == run.config_hash
    assert len(run.learning_curve()) == 3


def test_finished_run_is_a_cache_hit(compose, monkeypatch):
    c = compose(*FAST)
    first = train(c, progress=False)
    monkeypatch.setattr(L.Trainer, "fit", lambda *a, **k: pytest.fail("cache hit must not train"))
    again = train(c, progress=False)
    assert again.run_dir == first.run_dir and again.summary == first.summary


def test_interrupted_run_resumes_to_the_same_weights(compose, tmp_path, monkeypatch, caplog):
    c = compose(*FAST, "training.epochs=3", "training.resume_min_interval_s=0")  # a resume point every epoch
    reference = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "ref"))), progress=False)

    resumed = _killed_then_resumed(c, monkeypatch, caplog, kill_after_epoch=2)
    assert "resuming" in caplog.text and "after epoch 2 of 3" in caplog.text
    assert (resumed.run_dir / "DONE").exists()
    wr, wf = _weights(reference), _weights(resumed)
    assert all(torch.equal(wr[k], wf[k]) for k in wr)
    # the learning curve's rows travel in the resume state: the resumed curve is the uninterrupted one
    assert resumed.learning_curve() == reference.learning_curve() and len(reference.learning_curve()) == 3


def test_interrupted_run_with_augmentation_resumes_to_the_same_weights(compose, tmp_path, monkeypatch, caplog):
    """The augmentation's random stream travels in resume.ckpt: without it, the resumed epochs draw crops and
    flips from a restarted stream and the final weights differ (by up to 0.02 on this config)."""
    c = compose(
        *FAST,
        "data=synthetic",
        "data.augment=true",
        "data.image_size=16",
        "data.num_train=160",
        "training.epochs=4",
        "training.resume_min_interval_s=0",
    )
    reference = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "ref"))), progress=False)
    resumed = _killed_then_resumed(c, monkeypatch, caplog, kill_after_epoch=2)
    assert "after epoch 2 of 4" in caplog.text
    wr, wf = _weights(reference), _weights(resumed)
    assert all(torch.equal(wr[k], wf[k]) for k in wr)


def _killed_then_resumed(c, monkeypatch, caplog, kill_after_epoch: int):
    """Train ``c`` until a simulated kill at the end of epoch ``kill_after_epoch``, then train it again."""
    from lsx.training import callbacks

    original = callbacks.ResumePoint.on_train_epoch_end

    def crash(self, trainer, module):
        original(self, trainer, module)
        if trainer.current_epoch + 1 == kill_after_epoch:
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(callbacks.ResumePoint, "on_train_epoch_end", crash)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(c, progress=False)
    monkeypatch.setattr(callbacks.ResumePoint, "on_train_epoch_end", original)
    with caplog.at_level("INFO", logger="lsx.training.runner"):
        return train(c, progress=False)


def _spy_resume_points(monkeypatch) -> list[int]:
    """Epochs at which ResumePoint wrote resume.ckpt during the tests' train() calls."""
    from lsx.training import callbacks

    written: list[int] = []
    original = callbacks.ResumePoint.on_train_epoch_end

    def spy(self, trainer, module):
        before = len(self.written)
        original(self, trainer, module)
        written.extend(self.written[before:])

    monkeypatch.setattr(callbacks.ResumePoint, "on_train_epoch_end", spy)
    return written


@pytest.mark.parametrize(
    "every, interval, keep, epochs, written, kept",
    [
        (2, 0, True, 4, [2, 4], 4),  # the schedule; the kept point holds the last epoch
        (2, 0, True, 3, [2, 3], 3),  # keep_resume: the final epoch too, off the schedule
        (2, 0, False, 3, [2], None),  # not kept: no point at the end, and the run deletes it
        (0, 0, True, 4, [], None),  # 0 = never
        (None, 0, True, 2, [], None),  # null = never
        (1, 1e9, False, 3, [], None),  # every epoch, but the start of training is younger than the interval
        (1, 1e9, True, 3, [3], 3),  # ... except the final one when it is kept
    ],
)
def test_resume_points_follow_the_schedule(compose, monkeypatch, every, interval, keep, epochs, written, kept):
    from lsx.training.runner import _usable_resume_point

    spy = _spy_resume_points(monkeypatch)
    every_arg = "null" if every is None else every
    run = train(
        compose(
            *FAST,
            f"training.epochs={epochs}",
            f"training.resume_every={every_arg}",
            f"training.resume_min_interval_s={interval}",
            f"training.keep_resume={str(keep).lower()}",
        ),
        progress=False,
    )
    assert spy == written
    assert _usable_resume_point(run.run_dir / "resume.ckpt") == kept


def test_resume_interval_counts_from_the_newest_saved_state():
    from types import SimpleNamespace

    from lsx.training.callbacks import ResumePoint

    now = [0.0]
    point = ResumePoint("unused.ckpt", every=1, min_interval_s=30, clock=lambda: now[0])
    trainer = SimpleNamespace(strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj))
    point.on_train_start(trainer, None)
    due = []
    for t in (10, 31, 50, 70):  # epoch ends; a point at 31 restarts the clock, so 50 is too soon and 70 is due
        now[0] = t
        if point._due(trainer, 1):
            due.append(t)
            point.saved_at = t
    assert due == [31, 70]


def test_interrupted_run_with_sparse_resume_points_ends_byte_identical(compose, tmp_path, monkeypatch, caplog):
    c = compose(*FAST, "training.epochs=4", "training.resume_every=2", "training.resume_min_interval_s=0")
    reference = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "ref"))), progress=False)

    # epoch 3 has no resume point: the resumed run redoes it
    resumed = _killed_then_resumed(c, monkeypatch, caplog, kill_after_epoch=3)
    assert "after epoch 2 of 4" in caplog.text
    assert resumed.final_epoch == reference.final_epoch == 4
    assert resumed.final.read_bytes() == reference.final.read_bytes()


def test_resume_schedule_keys_never_change_the_cache_key(compose):
    from lsx.config import config_hash, training_config
    from lsx.jobs.base import job_key

    default = compose()
    assert default["training"]["resume_every"] == 1 and default["training"]["resume_min_interval_s"] == 30
    without = dict(
        default, training={k: v for k, v in default["training"].items() if k not in ("resume_every", "resume_min_interval_s")}
    )
    key = config_hash(training_config(without))
    assert config_hash(training_config(default)) == key
    for every, interval in ((0, 0), (None, 0.5), (7, 3600)):
        other = compose(
            f"training.resume_every={'null' if every is None else every}", f"training.resume_min_interval_s={interval}"
        )
        assert config_hash(training_config(other)) == key
        assert job_key(dict(other, analysis={"job": "x"})) == job_key(dict(default, analysis={"job": "x"}))
    assert config_hash(training_config(compose("training.epochs=11"))) != key  # the key still sees real changes


@pytest.mark.parametrize(
    "override, match",
    [
        ("training.resume_every=-1", r"training.resume_every must be an integer >= 0 or null.*got -1"),
        ("training.resume_every=1.5", r"training.resume_every must be an integer >= 0 or null.*got 1.5"),
        ("training.resume_every=true", r"training.resume_every must be an integer >= 0 or null.*got True"),
        ("training.resume_min_interval_s=-5", r"training.resume_min_interval_s must be a number of seconds >= 0.*got -5"),
        ("training.resume_min_interval_s=null", r"training.resume_min_interval_s must be a number.*got None"),
        ("training.resume_min_interval_s=soon", r"training.resume_min_interval_s must be a number.*got 'soon'"),
    ],
)
def test_bad_resume_schedule_is_one_line(compose, override, match):
    from lsx.cli.validate import validate_config

    c = compose(*FAST, override)
    with pytest.raises(ValueError, match=match):
        validate_config(c)
    with pytest.raises(ValueError, match=match):  # a script calling train() directly is refused too
        train(c, progress=False)


@pytest.mark.parametrize("extra, splits", [((), ("train", "val", "test")), (("data.val_fraction=0",), ("train", "test"))])
def test_summary_metrics_equal_the_plain_evaluation_up_to_rounding(compose, extra, splits):
    from lsx.training.runner import build_data, evaluate_model

    c = compose(*FAST, "training.epochs=2", *extra)
    run = train(c, progress=False)
    assert set(run.summary) == {f"{s}_{m}" for s in splits for m in ("loss", "acc")}  # an empty split is skipped
    dm = build_data(c).prepare()
    model = load_checkpoint(run.final).build_model()
    for s in splits:
        plain = evaluate_model(model, *dm.split(s))  # NCHW, the unfused graph
        assert abs(run.summary[f"{s}_loss"] - plain["loss"]) < 1e-5 and run.summary[f"{s}_acc"] == plain["acc"]
    # the module's own per-epoch validation pass (not Lightning's loop) sees the same final model
    last = run.learning_curve()[-1]
    assert last["epoch"] == 2 and last["train/loss"] > 0
    if "val" in splits:
        assert abs(last["val/loss"] - run.summary["val_loss"]) < 1e-5 and last["val/acc"] == run.summary["val_acc"]
    else:
        assert "val/loss" not in last


def test_gradient_clipping_bounds_every_step(compose):
    # plain SGD (no momentum, no weight decay) moves the weights by lr · ‖clipped gradient‖ <= lr · clip per step
    base = (
        *FAST,
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "optimizer.momentum=0",
        "optimizer.weight_decay=0",
        "optimizer.nesterov=false",
        "training.epochs=1",
        "data.batch_size=32",
    )
    steps = 128 // 32  # debug=fast: 128 examples

    def moved(run):
        w0, w1 = _weights(run, 0), _weights(run)
        return float(torch.sqrt(sum(((w1[k] - w0[k]).double() ** 2).sum() for k in w0 if w0[k].is_floating_point())))

    clip = 1e-3
    assert moved(train(compose(*base, f"training.gradient_clip_val={clip}"), progress=False)) <= 0.5 * clip * steps * (1 + 1e-4)
    assert moved(train(compose(*base), progress=False)) > 100 * 0.5 * clip * steps
    with pytest.raises(ValueError, match="gradient_clip_val must be > 0"):
        train(compose(*FAST, "training.gradient_clip_val=-1"), progress=False)


def test_epoch_metrics_reach_the_csv_logger_and_the_progress_bar(compose):
    import csv
    from types import SimpleNamespace

    from lsx.training.callbacks import EpochMetricsBar

    run = train(compose(*FAST, "training.epochs=2", "logger=csv"), progress=False)
    with open(run.run_dir / "csv" / "metrics.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]  # Lightning's 0-based epoch, as its own logging wrote it
    curve = run.learning_curve()
    assert [float(r["val/loss"]) for r in rows] == pytest.approx([r["val/loss"] for r in curve], rel=1e-6)
    bar = EpochMetricsBar()
    module = SimpleNamespace(epoch_metrics={"train/loss": 0.123456, "val/loss": 0.5, "val/acc": 0.75, "train/acc": 0.9})
    trainer = SimpleNamespace(loggers=[], progress_bar_metrics={})
    shown = bar.get_metrics(trainer, module)
    assert shown["train_loss"] == "0.1235" and shown["val_acc"] == "0.75" and "train_acc" not in shown


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(compose):
    c = compose(
        *FAST,
        "model=mlp",
        "optimizer=sgd",
        "optimizer.lr=1e30",
        "optimizer.nesterov=false",
        "optimizer.momentum=0",
        "training.epochs=3",
    )
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        train(c, progress=False)
    from lsx.training.runner import run_dir_for

    run_dir, _ = run_dir_for(c)
    assert (run_dir / "epoch_0000.pt").exists() and not (run_dir / "DONE").exists()
    load_checkpoint(run_dir / "epoch_0000.pt")  # still valid


def test_corrupt_and_mismatched_checkpoints_are_refused(compose, tmp_path):
    run = train(compose(*FAST), progress=False)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="expected 'resnet20'"):
        load_checkpoint(run.final, expect_model="resnet20")
    other = train(compose(*FAST, "model=mlp"), progress=False)
    with pytest.raises(CheckpointError, match="different architectures"):
        check_same_architecture([load_checkpoint(run.final), load_checkpoint(other.final)])


def test_model_that_does_not_fit_the_data_is_reported_before_training():
    from lsx.data import build_datamodule
    from lsx.models import build_model

    dm = build_datamodule("digits").prepare()
    model = build_model("simple_cnn", 1, 32, 10)  # built for 32x32 inputs, data are 8x8
    with pytest.raises(ValueError, match="does not fit data 'digits'"):
        check_model_fits(model, dm, "simple_cnn")


@pytest.mark.parametrize(
    "overrides, match",
    [
        (("optimizer.name=rmsprop",), "valid optimizers: adam, adamw, sgd"),
        (("scheduler=cyclic", "scheduler.cycle_epochs=5", "training.epochs=2"), "longer than training"),
        (("model.name=alexnet",), "valid models"),
        (("data.name=imagenet",), "valid datasets"),
        (("training.checkpoint_epochs=[7]",), "outside 0..training.epochs"),
    ],
)
def test_bad_training_config_errors(compose, overrides, match):
    with pytest.raises(ValueError, match=match):
        train(compose(*FAST, *overrides), progress=False)


def test_schedules():
    from lsx.training.optim import lr_multiplier

    step = lr_multiplier({"name": "step", "milestones": [2, 4], "gamma": 0.1}, steps_per_epoch=10, total_epochs=6)
    assert step(0) == 1 and step(19) == 1 and abs(step(20) - 0.1) < 1e-12 and abs(step(45) - 0.01) < 1e-12
    cyc = lr_multiplier({"name": "cyclic", "cycle_epochs": 2, "min_factor": 0.0}, steps_per_epoch=10, total_epochs=6)
    assert cyc(0) == 1 and cyc(20) == 1 and cyc(19) < 0.01  # low at the end of each cycle, restart after
    cos = lr_multiplier({"name": "cosine"}, steps_per_epoch=10, total_epochs=2)
    assert cos(0) == 1 and cos(20) == 0


def test_a_checkpoint_with_flipped_bytes_is_refused(tmp_path):
    """64 bytes flipped in the middle still unpickle; the recorded sha256 catches them."""
    from lsx.models import build_model
    from lsx.training.checkpoints import CHECKSUMS, CheckpointError, load_checkpoint, save_checkpoint

    model = build_model("mlp", 1, (8, 8), 10, hidden=16)
    shape = {"in_channels": 1, "height": 8, "width": 8, "num_classes": 10}
    path = save_checkpoint(tmp_path / "epoch_1.pt", model, {"model": {"name": "mlp", "hidden": 16}}, "h", 1, shape)
    assert (tmp_path / CHECKSUMS).is_file()
    load_checkpoint(path)  # intact: verified and loaded
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = bytes(b ^ 0xFF for b in raw[mid : mid + 64])
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="fails its sha256 check"):
        load_checkpoint(path)


def test_a_run_whose_loss_explodes_is_marked_diverged(compose):
    """Adam at lr 1e8 ends at a finite but huge loss: the run fails as diverged, now and on every cache hit."""
    from lsx.training.runner import DivergedError, run_dir_for, train

    c = compose(
        "model=mlp",
        "model.hidden=16",
        "data=digits",
        "optimizer=adam",
        "optimizer.lr=1e8",
        "training.epochs=2",
        "trainer.progress_bar=false",
    )
    with pytest.raises(DivergedError, match="diverged: final train loss"):
        train(c, progress=False)
    run_dir, _ = run_dir_for(c)
    assert "diverged" in json.loads((run_dir / "summary.json").read_text())
    with pytest.raises(DivergedError, match="delete the run directory"):
        train(c, progress=False)  # the cache hit refuses it too, without retraining
