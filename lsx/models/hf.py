"""Hugging Face ``transformers`` models for ``model=hf`` (the optional extra ``lsx[hf]``): built from a config, never downloaded.

``from_config(model_type, config)`` builds ``AutoModelForCausalLM`` (or ``task``'s auto class) from
``AutoConfig.for_model(model_type, **config)`` with freshly initialized weights (the training seed decides them);
``pretrained_dir`` loads a model saved with ``save_pretrained`` from a local directory instead
(``local_files_only``: lsx never reaches the hub at run time).
"""

from __future__ import annotations

from typing import Any

from torch import nn

_TASKS = {
    "causal_lm": "AutoModelForCausalLM",
    "sequence_classification": "AutoModelForSequenceClassification",
    "image_classification": "AutoModelForImageClassification",
}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ValueError("model=hf needs the transformers package: pip install 'lsx[hf]'") from None
    return transformers


def from_config(
    model_type: str = "gpt2", config: dict[str, Any] | None = None, task: str = "causal_lm", pretrained_dir: str | None = None
) -> nn.Module:
    """A ``transformers`` model of ``model_type`` for ``task``, from ``config`` (or a local ``pretrained_dir``)."""
    tf = _transformers()
    if task not in _TASKS:
        raise ValueError(f"model.task={task!r}; valid: {', '.join(_TASKS)}")
    auto = getattr(tf, _TASKS[task])
    if pretrained_dir:
        return auto.from_pretrained(str(pretrained_dir), local_files_only=True)
    try:
        cfg = tf.AutoConfig.for_model(model_type, **dict(config or {}))
    except ValueError as err:
        raise ValueError(f"model.model_type={model_type!r}: {str(err).splitlines()[0]}") from None
    return auto.from_config(cfg)


from_config.requires = ("transformers",)  # checked before training (lsx.models.target.check_target)
from_config.extra = "hf"
