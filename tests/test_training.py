"""Training: bitwise determinism, the config-hash cache, resume, and each bad input's error."""
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
    c = compose(*FAST, "training.epochs=3")
    reference = train(dict(c, paths=dict(c["paths"], cache_dir=str(tmp_path / "ref"))), progress=False)

    from lsx.training import callbacks

    original = callbacks.ResumePoint.on_train_epoch_end

    def crash_after_epoch_2(self, trainer, module):
        original(self, trainer, module)
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(callbacks.ResumePoint, "on_train_epoch_end", crash_after_epoch_2)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(c, progress=False)
    monkeypatch.setattr(callbacks.ResumePoint, "on_train_epoch_end", original)
    with caplog.at_level("INFO", logger="lsx.training.runner"):
        resumed = train(c, progress=False)
    assert "resuming" in caplog.text and "after epoch 2 of 3" in caplog.text
    assert (resumed.run_dir / "DONE").exists()
    wr, wf = _weights(reference), _weights(resumed)
    assert all(torch.equal(wr[k], wf[k]) for k in wr)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(compose):
    c = compose(*FAST, "model=mlp", "optimizer=sgd", "optimizer.lr=1e30", "optimizer.nesterov=false", "optimizer.momentum=0", "training.epochs=3")
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
