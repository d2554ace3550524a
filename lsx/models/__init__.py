"""Model zoo written in lsx (torchvision has none of these CIFAR variants)."""

from . import densenet, mlp, resnet, simple_cnn, vgg  # noqa: F401  (registration side effects)
from .registry import DataShape, available_models, build_model, register

__all__ = ["DataShape", "available_models", "build_model", "register"]
