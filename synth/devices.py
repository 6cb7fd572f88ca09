"""Torch helpers shared by the stages: one rule for `device` settings, a model's device and mode."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from synth.errors import InputError

__all__ = ["eval_mode", "model_device", "resolve_device"]


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
