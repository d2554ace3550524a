"""GPU knobs on CPU: the LR schedule does not advance on an optimizer step the AMP scaler skipped, and
channels_last is switched off for one torch thread on CPU only."""

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader, TensorDataset

from lsx.training.module import ClassifierModule


def _fit(x: torch.Tensor, steps: int) -> tuple[ClassifierModule, MixedPrecision]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3))
    module = ClassifierModule(
        model,
        {"name": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0},
        {"name": "cosine"},
        epochs=steps,
        channels_last=False,
    )
    # fp16 AMP with a real GradScaler on CPU (Lightning's own flag would switch CPU to bf16, which has no scaler)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0**16))
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        plugins=[plugin],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    y = torch.zeros(len(x), dtype=torch.long)
    trainer.fit(module, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=len(x)))
    return module, plugin


def test_a_step_the_scaler_skipped_does_not_step_the_schedule():
    big = torch.full((4, 1, 8, 8), 300.0)  # fp16 gradients x 2^16 overflow: the scaler skips and halves its scale
    module, plugin = _fit(big, steps=1)
    assert plugin.scaler.get_scale() < 2.0**16  # the step really was skipped
    sched = module.lr_schedulers()
    assert sched.last_epoch == 0 and module.optimizers().param_groups[0]["lr"] == 0.1
    assert module.skipped_steps == 1


def test_a_step_the_scaler_took_steps_the_schedule():
    module, plugin = _fit(torch.full((4, 1, 8, 8), 1e-3), steps=1)
    assert plugin.scaler.get_scale() == 2.0**16 and module.skipped_steps == 0
    assert module.lr_schedulers().last_epoch == 1


def test_channels_last_stays_on_for_gpus_at_one_thread(monkeypatch):
    from lsx.training.runner import channels_last_safe

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # torchrun's OMP_NUM_THREADS=1
    assert channels_last_safe("gpu") and channels_last_safe("cuda")
    assert not channels_last_safe("cpu") and not channels_last_safe()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert channels_last_safe("cpu")


def test_a_precision_the_device_cannot_run_is_one_line(compose):
    import pytest

    from lsx.cli.validate import validate_config

    validate_config(compose("trainer.precision=bf16-mixed"))  # bf16 AMP runs on CPU
    for bad, msg in (
        ("16-mixed", "trainer.precision=16-mixed needs a CUDA GPU"),
        ("16", "16-mixed needs a CUDA GPU"),
        ("8-true", "not a precision lsx trains with; valid: 32-true"),
    ):
        with pytest.raises(ValueError, match=msg):
            validate_config(compose(f"trainer.precision={bad}"))
