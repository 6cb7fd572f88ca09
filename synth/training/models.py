"""Classifier architectures: the study's small CNN and ResNet-18, plus the shared input transform.

The models know nothing about data or training. Every ReLU and max-pool of `StudyCNN` is its own
non-inplace module, because SHAP's DeepExplainer attaches its gradient hooks per module and
breaks on shared or inplace activations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn

from synth.errors import InputError

__all__ = ["ModelName", "StudyCNN", "build_model", "to_input"]

ModelName = Literal["study-cnn", "resnet18"]

# Inputs are scaled to [-1, 1]: (x / 255 - 0.5) / 0.5, the same for training and evaluation.
_MEAN = 0.5
_STD = 0.5


def to_input(images: torch.Tensor) -> torch.Tensor:
    """Float model input from uint8 images (N x 3 x S x S), scaled to [-1, 1].

    Args:
        images: uint8 tensor of pixel values, on any device.

    Returns:
        float32 tensor of the same shape and device.

    Raises:
        TypeError: `images` is not a uint8 tensor (a float tensor was likely normalised already).
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"`images` must be a uint8 tensor, got dtype {images.dtype}")
    return (images.float() / 255.0 - _MEAN) / _STD


class StudyCNN(nn.Module):
    """The study's Keras-style "conv32-conv64-fc128" classifier.

    conv 3->32 (3x3, padding=1), ReLU, max-pool 2, conv 32->64 (3x3, padding=1), ReLU, max-pool 2,
    flatten, linear -> 128, ReLU, dropout 0.5, linear 128 -> n_classes. Padding 1 keeps each conv
    "same"-sized, so the flattened size is 64 * (size // 4) ** 2.

    Args:
        n_classes: number of output logits.
        size: side S of the square S x S inputs.
    """

    def __init__(self, n_classes: int, size: int = 64) -> None:
        super().__init__()
        if n_classes < 2:
            raise InputError(f"`n_classes` must be at least 2, got {n_classes}")
        if size < 4:
            raise InputError(f"`size` must be at least 4 (two 2x2 poolings), got {size}")
        self.n_classes = n_classes
        self.size = size
        side = size // 4
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * side * side, 128),
            nn.ReLU(inplace=False),
            nn.Dropout(0.5),
            nn.Linear(128, n_classes),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases, as Keras initialises Conv2D and Dense."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N x n_classes) for float inputs (N x 3 x S x S) made by `to_input`."""
        return self.classifier(self.features(x))


def _resnet18(n_classes: int, pretrained_weights: str | None) -> nn.Module:
    from torchvision.models import resnet18  # slow import; only ResNet users pay for it

    model = resnet18(weights=None)  # never downloads: weights come from a local file or nowhere
    if pretrained_weights is not None:
        _load_backbone(model, Path(pretrained_weights))
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    return model


def _load_backbone(model: nn.Module, path: Path) -> None:
    """Load a local ResNet-18 state dict, all but the classification head `fc`."""
    if not path.is_file():
        raise FileNotFoundError(
            f"`pretrained_weights` file {str(path)!r} does not exist; give a local ResNet-18 "
            "state dict (weights are never downloaded)"
        )
    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, dict):
        raise InputError(f"`pretrained_weights` {str(path)!r} is not a state dict")
    # The head is replaced for our classes, so its shape in the file does not matter.
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise InputError(
            f"`pretrained_weights` {str(path)!r} is not a ResNet-18 state dict: "
            f"missing {missing[:5]}, unexpected {list(unexpected)[:5]}"
        )


def build_model(
    name: ModelName, n_classes: int, size: int, pretrained_weights: str | None = None
) -> nn.Module:
    """A freshly initialised classifier.

    Uses the global torch RNG for initialisation: callers that need determinism seed it inside
    `torch.random.fork_rng()` (as `synth.training.trainer` does).

    Args:
        name: 'study-cnn' (the study's CNN) or 'resnet18' (torchvision, random init).
        n_classes: number of output logits.
        size: input side S in pixels.
        pretrained_weights: local ResNet-18 state dict file to start from ('resnet18' only).

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        ValueError: unknown `name`, bad sizes, or weights given for the study CNN.
        FileNotFoundError: `pretrained_weights` does not exist.
    """
    if name not in get_args(ModelName):
        raise InputError(f"`name` must be one of {get_args(ModelName)}, got {name!r}")
    if n_classes < 2:
        raise InputError(f"`n_classes` must be at least 2, got {n_classes}")
    if name == "study-cnn":
        if pretrained_weights is not None:
            raise InputError("`pretrained_weights` applies to 'resnet18' only, not 'study-cnn'")
        return StudyCNN(n_classes, size)
    if size < 32:
        raise InputError(f"`size` must be at least 32 for 'resnet18' (5 downsamplings), got {size}")
    return _resnet18(n_classes, pretrained_weights)
