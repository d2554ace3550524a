"""model=timm and the byo_timm preset, with a stand-in ``timm`` module.

Why a stand-in: timm imports torchvision, and PyPI's torchvision wheels for the pinned torch 2.13 are CUDA builds
that break a CPU install (DESIGN), so the real package cannot be installed beside the CPU test environment. The
stand-in records how lsx calls ``timm.create_model`` and builds a small CNN; what is tested is lsx's side: the
data's shape reaches ``num_classes``/``in_chans``, weights are never pretrained unless a local file is given, the
model trains and is analysed through the cache, and every failure is one line.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

CALLS: list[dict] = []


def _fake_timm(monkeypatch, import_error: BaseException | None = None) -> None:
    """A ``timm`` whose create_model records its arguments and builds a tiny CNN (or whose import fails)."""
    if import_error is not None:

        class _Finder:
            def find_spec(self, name, path=None, target=None):
                if name == "timm":
                    raise import_error
                return None

        monkeypatch.delitem(sys.modules, "timm", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_Finder(), *sys.meta_path])
        return

    def create_model(model_name, pretrained=False, num_classes=1000, in_chans=3, pretrained_cfg_overlay=None, **kw):
        if model_name != "test_resnet":
            raise RuntimeError(f"Unknown model ({model_name})")
        CALLS.append(dict(model_name=model_name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans,
                          overlay=pretrained_cfg_overlay, **kw))  # fmt: skip
        return nn.Sequential(
            nn.Conv2d(in_chans, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes)
        )

    module = types.ModuleType("timm")
    module.create_model = create_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "timm", module)
    CALLS.clear()


def test_timm_model_gets_the_data_shape_and_no_pretrained_weights(compose, monkeypatch):
    from lsx.training.checkpoints import model_from_config, model_label

    _fake_timm(monkeypatch)
    c = compose("model=timm", "data=digits")
    model = model_from_config(c["model"], {"in_channels": 1, "height": 8, "width": 8, "num_classes": 10})
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert CALLS == [dict(model_name="test_resnet", pretrained=False, num_classes=10, in_chans=1, overlay=None)]
    assert model_label(c["model"]) == "timm_test_resnet"


def test_local_pretrained_file_goes_through_timms_loader_and_a_missing_one_is_one_line(monkeypatch, tmp_path):
    from lsx.models.timm_factory import create_model

    _fake_timm(monkeypatch)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    create_model("test_resnet", num_classes=10, in_chans=1, pretrained_file=str(weights))
    assert CALLS[-1]["pretrained"] is True and CALLS[-1]["overlay"] == {"file": str(weights)}
    with pytest.raises(
        ValueError, match=r"pretrained_file='.*nope.pt' does not exist \(a local weights file; lsx never downloads\)"
    ):
        create_model("test_resnet", pretrained_file=str(tmp_path / "nope.pt"))


@pytest.mark.parametrize(
    "error, message",
    [
        (ModuleNotFoundError("No module named 'timm'"), r"model=timm needs the timm package: pip install 'lsx\[timm\]'"),
        (ModuleNotFoundError("No module named 'torchvision'"), r"imports torchvision, which is missing; install the torchvision"),
        (RuntimeError("operator torchvision::nms does not exist"), r"importing timm failed in torchvision \(operator"),
    ],
)
def test_timm_that_cannot_be_imported_is_one_line(monkeypatch, error, message):
    from lsx.models.timm_factory import create_model

    _fake_timm(monkeypatch, import_error=error)
    with pytest.raises(ValueError, match=message):
        create_model()


def test_missing_timm_is_refused_before_training(monkeypatch):
    import importlib.util

    from lsx.models.target import check_target

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the timm package: pip install 'lsx\[timm\]' \(or pip install timm\)"):
        check_target({"_target_": "lsx.models.timm_factory.create_model"}, "model")


def test_byo_timm_preset_trains_and_interpolates(compose, monkeypatch, lsx_dirs, tmp_path):
    """The preset end to end (tiny): two optima of the timm model, the interpolation between them; an unknown
    architecture is one line."""
    from lsx.cli.analyze import run_analysis

    _fake_timm(monkeypatch)
    c = compose("experiment=byo_timm", "training.epochs=1", "analysis.alpha.num=3")
    res = run_analysis(c, tmp_path / "run", progress=False)
    assert {e["seed"] for e in res["training"]} == {0, 1} and all(call["in_chans"] == 1 for call in CALLS)
    m = res["metrics"]
    assert (
        m["nonfinite_points"] == 0
        and m["distance"] > 0
        and m["max_train_loss_between"] >= min(m["train_loss_a"], m["train_loss_b"])
    )
    with pytest.raises(ValueError, match=r"model._target_=.* failed: RuntimeError: Unknown model \(nope\)"):
        run_analysis(
            compose("experiment=byo_timm", "model.model_name=nope", "training.epochs=1"), tmp_path / "r2", progress=False
        )
