"""model=timm with the real timm package: skipped where timm cannot be imported (the CPU test environment: timm
imports torchvision, see tests/test_byo_timm.py, which tests lsx's side with a stand-in).

Run it where timm and a matching torchvision import, e.g. a venv with torch 2.14.1 + torchvision 0.29.1 + timm
(docs/byo.md says how): ``pytest tests/test_byo_timm_real.py``.
"""

from __future__ import annotations

import pytest
import torch


def _real_timm():
    try:
        import timm
    except Exception as err:  # ImportError, or torchvision's RuntimeError on a mismatched build
        pytest.skip(f"timm does not import here: {type(err).__name__}: {str(err).splitlines()[0]}")
    return timm


def test_real_timm_model_is_sized_from_the_data_and_the_seed_decides_its_weights(compose):
    _real_timm()
    from lsx.training.checkpoints import model_from_config

    c = compose("experiment=byo_timm")
    shape = {"in_channels": 1, "height": 8, "width": 8, "num_classes": 10}

    def built(seed: int) -> dict:
        torch.manual_seed(seed)  # offline and pretrained=False: the seed alone decides the weights
        model = model_from_config(c["model"], shape)
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
        return model.state_dict()

    a, b, other = built(0), built(0), built(1)
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], other[k]) for k in a)


def test_real_timm_local_pretrained_file_is_loaded(tmp_path):
    timm = _real_timm()
    from safetensors.torch import save_file

    from lsx.models.timm_factory import create_model

    torch.manual_seed(1)
    source = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    torch.manual_seed(2)  # another seed: only the file can make the weights equal
    loaded = create_model("test_resnet", num_classes=10, in_chans=1, pretrained_file=str(path))
    a, b = loaded.state_dict(), source.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)  # the classifier included: it fits
    # a file whose head has other classes: the body is loaded, the head re-initialized for the data
    torch.manual_seed(3)
    five = create_model("test_resnet", num_classes=5, in_chans=1, pretrained_file=str(path))
    c = five.state_dict()
    assert c["fc.weight"].shape[0] == 5 and all(torch.equal(c[k], b[k]) for k in b if not k.startswith("fc."))


def test_real_timm_preset_trains_interpolates_and_refuses_an_unknown_architecture(compose, lsx_dirs, tmp_path):
    _real_timm()
    from lsx.cli.analyze import run_analysis

    res = run_analysis(
        compose("experiment=byo_timm", "training.epochs=1", "analysis.alpha.num=3"), tmp_path / "r", progress=False
    )
    m = res["metrics"]
    assert {e["seed"] for e in res["training"]} == {0, 1} and m["nonfinite_points"] == 0 and m["distance"] > 0
    with pytest.raises(ValueError, match=r"model._target_=.* failed: RuntimeError: Unknown model"):
        run_analysis(
            compose("experiment=byo_timm", "model.model_name=nope", "training.epochs=1"), tmp_path / "r2", progress=False
        )
