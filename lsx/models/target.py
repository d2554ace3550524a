"""Models, losses and data sets named by ``_target_``: any importable factory or class, built with Hydra.

Why: researchers study their own networks. ``model: {_target_: my_pkg.make_net, width: 64}`` builds
``my_pkg.make_net(width=64)``; the data's shape is available through ``${shape:num_classes}`` (also
``in_channels``, ``height``, ``width`` and ``numel``, their product), which lsx fills in when the data are
known (the config is composed and hashed before any data set is loaded, so the resolver leaves a placeholder
that :func:`fill_shape` replaces).
``name`` in a target config is lsx's label for the model (cache directory names), never passed to the target.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from lsx.utils.shape_resolver import SHAPE_KEYS  # importing it registers ${shape:KEY}
from lsx.utils.shape_resolver import SHAPE_PLACEHOLDER as _PLACEHOLDER


def is_target(cfg: Mapping[str, Any] | None) -> bool:
    return isinstance(cfg, Mapping) and bool(cfg.get("_target_"))


def target_label(cfg: Mapping[str, Any]) -> str:
    """The config's ``name``, else the target's last dotted component (``my_pkg.make_net`` → ``make_net``)."""
    if cfg.get("name"):
        return str(cfg["name"])
    return str(cfg.get("_target_", "")).rsplit(".", 1)[-1] or "model"


def locate(path: str, key: str) -> Any:
    """The object ``path`` names; one line naming the key when it cannot be imported."""
    from hydra._internal.utils import _locate

    try:
        return _locate(str(path))
    except Exception as err:  # ImportError, AttributeError, ... wrapped by Hydra
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{key}._target_={path!r} cannot be imported ({reason}); give an importable "
            "'package.module.name' (is its package on PYTHONPATH?)"
        ) from None


def check_target(cfg: Mapping[str, Any] | None, key: str) -> None:
    """Refuse an unimportable or uncallable ``_target_`` before anything is built (lsx.cli.validate)."""
    if not is_target(cfg):
        return
    obj = locate(cfg["_target_"], key)
    if not callable(obj):
        raise ValueError(f"{key}._target_={cfg['_target_']!r} is a {type(obj).__name__}, not a callable factory or class")
    import importlib.util

    missing = [m for m in getattr(obj, "requires", ()) if importlib.util.find_spec(m) is None]
    if missing:  # an optional extra (e.g. model=hf needs transformers): say so before anything trains
        extra = getattr(obj, "extra", None)  # the lsx extra that installs them, when the target names one
        how = f"pip install 'lsx[{extra}]' (or pip install {' '.join(missing)})" if extra else f"pip install {' '.join(missing)}"
        raise ValueError(f"{key}._target_={cfg['_target_']!r} needs the {', '.join(missing)} package: {how}")


def fill_shape(value: Any, shape: Mapping[str, int]) -> Any:
    """``value`` with every ``${shape:KEY}`` placeholder replaced by the data's ``shape[KEY]``."""
    if isinstance(value, str):
        for k in SHAPE_KEYS:
            if value == _PLACEHOLDER.format(k):
                return int(shape["in_channels"] * shape["height"] * shape["width"]) if k == "numel" else int(shape[k])
        return value
    if isinstance(value, Mapping):
        return {k: fill_shape(v, shape) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(fill_shape(v, shape) for v in value)
    return value


def instantiate(cfg: Mapping[str, Any], key: str, drop: tuple[str, ...] = ("name",), **kwargs: Any) -> Any:
    """``cfg``'s target called with its other keys (minus ``drop``) and ``kwargs``; failures in one line."""
    from hydra.utils import instantiate as hydra_instantiate

    locate(cfg["_target_"], key)
    args = {k: v for k, v in cfg.items() if k not in drop}
    try:
        return hydra_instantiate(args, **kwargs, _convert_="all")
    except Exception as err:
        cause = err.__cause__ or err
        raise ValueError(
            f"{key}._target_={cfg['_target_']!r} failed: {type(cause).__name__}: "
            f"{str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
        ) from None


def instantiate_model(cfg: Mapping[str, Any], data_shape: Mapping[str, int]) -> nn.Module:
    """The module ``model._target_`` builds for data of ``data_shape``; refuses anything that is not an ``nn.Module``."""
    model = instantiate(fill_shape(dict(cfg), data_shape), "model")
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model._target_={cfg['_target_']!r} returned a {type(model).__name__}, not a torch.nn.Module; "
            "the target must build the network (a class or a factory returning one)"
        )
    return model
