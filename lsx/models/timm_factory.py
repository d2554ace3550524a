"""timm models for ``model=timm`` (the optional extra ``lsx[timm]``): any registered architecture, never downloaded.

``create_model(model_name, num_classes, in_chans)`` is ``timm.create_model(..., pretrained=False)``: freshly
initialized weights that the training seed decides. ``pretrained_file`` loads local weights through timm's own
loader (``pretrained_cfg_overlay={"file": ...}``), which adapts the stem to ``in_chans`` as timm does for its hub
weights; lsx never reaches the hub at run time. The classifier: timm re-initializes it whenever ``num_classes``
differs from the class count its config declares for the architecture (1000 for ImageNet ones), which would throw
away the head of a user's own fine-tuned file; lsx reads the class count of the file's classifier and declares that
one, so a head that fits the data is loaded and one that does not (an ImageNet file on 10 classes) is re-initialized.

timm imports torchvision. PyPI's torchvision wheels for torch 2.13 are CUDA builds: on a CPU-only torch, install
the CPU torchvision that matches it first (docs/byo.md); without it the error says so in one line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

log = logging.getLogger("lsx")


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
        overlay: dict[str, Any] = {"file": str(path)}
        in_file = _file_classes(timm, model_name, path)
        if in_file is not None:
            overlay["num_classes"] = in_file
            what = "loaded" if in_file == num_classes else f"re-initialized for {num_classes} classes (the file's has {in_file})"
            log.info("model.pretrained_file %s: classifier %s", path.name, what)
        return timm.create_model(
            model_name,
            pretrained=True,
            pretrained_cfg_overlay=overlay,
            num_classes=num_classes,
            in_chans=in_chans,
            **kwargs,
        )
    return timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


def _file_classes(timm: Any, model_name: str, path: Path) -> int | None:
    """The output count of the classifier in a weights file (timm's reader), or None where the architecture names no
    classifier or the file cannot be read here (timm's own loader then decides, and reports a bad file)."""
    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
        names = getattr(cfg, "classifier", None)
        state = timm.models.load_state_dict(str(path))
    except Exception:
        return None
    for name in (names,) if isinstance(names, str) else tuple(names or ()):
        weight = state.get(f"{name}.weight")
        if weight is not None and weight.dim() >= 1:
            return int(weight.shape[0])
    return None


create_model.requires = ("timm",)  # type: ignore[attr-defined]  # checked before training (lsx.models.target.check_target)
create_model.extra = "timm"  # type: ignore[attr-defined]
