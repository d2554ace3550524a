"""OmegaConf resolvers used by the Hydra configs (registered on import of the entry points)."""

from __future__ import annotations

import os
import uuid

from omegaconf import OmegaConf

# one id per launching process: run/sweep directories of concurrent launches never collide,
# even when started in the same microsecond on different machines of a cluster
_UID = f"{os.getpid() % 100000:05d}{uuid.uuid4().hex[:4]}"

if not OmegaConf.has_resolver("lsx_uid"):
    OmegaConf.register_new_resolver("lsx_uid", lambda: _UID)

# ${shape:KEY}: the data's shape (in_channels, height, width, num_classes, numel) in a model._target_ config. The config
# is composed and hashed before any data are loaded, so this leaves a placeholder that lsx.models.target.fill_shape
# replaces when the model is built.
SHAPE_KEYS = ("in_channels", "height", "width", "num_classes", "numel")
SHAPE_PLACEHOLDER = "<lsx-shape:{}>"


def _shape_placeholder(key: str) -> str:
    if key not in SHAPE_KEYS:
        raise ValueError(f"${{shape:{key}}}: unknown data shape key {key!r}; valid: {', '.join(SHAPE_KEYS)}")
    return SHAPE_PLACEHOLDER.format(key)


if not OmegaConf.has_resolver("shape"):
    OmegaConf.register_new_resolver("shape", _shape_placeholder)
