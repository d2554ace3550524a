"""timm models for ``model=timm`` (the optional extra ``lsx[timm]``): any registered architecture, never downloaded.

``create_model(model_name, num_classes, in_chans)`` is ``timm.create_model(..., pretrained=False)``: freshly
initialized weights that the training seed decides. ``pretrained_file`` loads local weights through timm's own
loader (``pretrained_cfg_overlay={"file": ...}``), which adapts the classifier to ``num_classes`` and the stem to
``in_chans`` as timm does for its hub weights; lsx never reaches the hub at run time.

timm imports torchvision. PyPI's torchvision wheels for torch 2.13 are CUDA builds: on a CPU-only torch, install
the CPU torchvision that matches it first (docs/byo.md); without it the error says so in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn


def _timm():
    try:
        import timm
    except ImportError as err:
        if "torchvision" in str(err):
            raise ValueError(
                "model=timm: timm is installed but imports torchvision, which is missing; install the torchvision "
                "build that matches your torch (PyPI's wheels for torch 2.13 are CUDA builds; docs/byo.md)"
            ) from None
        raise ValueError("model=timm needs the timm package: pip install 'lsx[timm]'") from None
    except RuntimeError as err:  # a torchvision built for another torch: "operator torchvision::nms does not exist"
        raise ValueError(
            f"model=timm: importing timm failed in torchvision ({str(err).splitlines()[0]}); install the torchvision "
            "build that matches your torch (docs/byo.md)"
        ) from None
    return timm


def create_model(
    model_name: str = "test_resnet",
    num_classes: int = 10,
    in_chans: int = 3,
    pretrained_file: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """``timm.create_model(model_name, num_classes=, in_chans=, **kwargs)``; local weights from ``pretrained_file``."""
    timm = _timm()
    if pretrained_file:
        path = Path(pretrained_file).expanduser()
        if not path.is_file():
            raise ValueError(f"model.pretrained_file={str(path)!r} does not exist (a local weights file; lsx never downloads)")
        return timm.create_model(
            model_name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(path)},
            num_classes=num_classes,
            in_chans=in_chans,
            **kwargs,
        )
    return timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


create_model.requires = ("timm",)  # type: ignore[attr-defined]  # checked before training (lsx.models.target.check_target)
create_model.extra = "timm"  # type: ignore[attr-defined]
