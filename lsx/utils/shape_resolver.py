"""``${shape:KEY}``: the data's shape in a ``model._target_`` config (in_channels, height, width, num_classes, numel).

Why a placeholder: the config is composed and hashed before any data set is loaded, so the resolver leaves
``<lsx-shape:KEY>``, which :func:`lsx.models.target.fill_shape` replaces when the model is built. A module of
its own (omegaconf only) so both the command line and the model code register it without importing each other.
"""

from __future__ import annotations

from omegaconf import OmegaConf

SHAPE_KEYS = ("in_channels", "height", "width", "num_classes", "numel")  # numel = in_channels * height * width
SHAPE_PLACEHOLDER = "<lsx-shape:{}>"


def shape_placeholder(key: str) -> str:
    if key not in SHAPE_KEYS:
        raise ValueError(f"${{shape:{key}}}: unknown data shape key {key!r}; valid: {', '.join(SHAPE_KEYS)}")
    return SHAPE_PLACEHOLDER.format(key)


def register() -> None:
    if not OmegaConf.has_resolver("shape"):
        OmegaConf.register_new_resolver("shape", shape_placeholder)


register()
