"""Torch helpers shared by the stages: one rule for `device` settings, a model's device and mode."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from synth.errors import InputError
from synth.faults import InjectedOutOfMemoryError

__all__ = [
    "OUT_OF_MEMORY_ERRORS",
    "check_uint8_images",
    "eval_mode",
    "model_device",
    "resolve_device",
]

# What an out-of-memory looks like: CUDA's, or the one tests inject on machines without a GPU.
OUT_OF_MEMORY_ERRORS = (torch.cuda.OutOfMemoryError, InjectedOutOfMemoryError)


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu"):
        raise InputError(f"`device` must be 'auto', 'cuda' or 'cpu', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("`device` is 'cuda' but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return device


def model_device(model: nn.Module) -> torch.device:
    """The device of `model`'s parameters (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module):
    """Eval mode for the block, then the caller's mode back (a training loop may call us)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def check_uint8_images(images_uint8, *, batch_size: int = 1) -> torch.Tensor:
    """`images_uint8` as a non-empty uint8 tensor N x 3 x S x S, or `ValueError` saying what it is;
    `batch_size` (of the caller's forward passes) must be positive."""
    images = torch.as_tensor(images_uint8)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or not len(images):
        raise ValueError(
            "`images_uint8` must be a non-empty uint8 tensor N x 3 x S x S, got "
            f"dtype={images.dtype}, shape={tuple(images.shape)}"
        )
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be > 0, got {batch_size}")
    return images
