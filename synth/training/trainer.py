"""Train a classifier on uint8 image tensors, and save/load self-describing checkpoints.

Training is seeded end to end without touching the caller's random state: the model is built and
trained under `torch.random.fork_rng()`, and shuffling and augmentation draw from their own
`torch.Generator`. On the CPU the same inputs and seed give bit-identical weights.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synth.config import RecipeConfig, TrainConfig
from synth.devices import resolve_device
from synth.errors import CheckpointError
from synth.storage import atomic_write_bytes, sha256_file
from synth.training.models import build_model, to_input

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointInfo",
    "EpochStats",
    "TrainedModel",
    "load_checkpoint",
    "save_checkpoint",
    "train_classifier",
]

_FORMAT = "datasynth-checkpoint"
_VERSION = 1


@dataclass(frozen=True)
class EpochStats:
    """One pass over the training set: mean loss and accuracy on the (augmented) batches."""

    epoch: int  # 1-based, counted within its phase
    loss: float
    accuracy: float
    phase: str = "train"  # 'train', or 'pretrain' / 'finetune' for pretrain-finetune recipes


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier (on the CPU, in eval mode) and how it got there."""

    model: nn.Module
    model_name: str
    n_classes: int
    size: int
    seed: int
    device: str  # where it was trained
    history: tuple[EpochStats, ...]


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint: its path and the sha256 of its bytes."""

    path: str
    digest: str


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything a checkpoint records besides the weights."""

    path: str
    digest: str
    model_name: str
    n_classes: int
    size: int
    class_names: tuple[str, ...]
    train_config: TrainConfig
    recipe: RecipeConfig | None
    seed: int
    history: tuple[EpochStats, ...]


def _check_data(images: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"`images` must be uint8 N x 3 x S x S, got {images.dtype} {tuple(images.shape)}"
        )
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"`images` must be square, got {tuple(images.shape[2:])}")
    if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"`labels` must be int64 of shape ({images.shape[0]},), "
            f"got {labels.dtype} {tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError("`images` is empty: nothing to train on")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_classes:
        raise ValueError(f"`labels` must lie in [0, {n_classes}), got values in [{low}, {high}]")


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to size/16 pixels (black fill, like letterbox)."""
    n, _, size, _ = batch.shape
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    shift = max(1, size // 16)
    padded = nn.functional.pad(batch, (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack(
        [padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offsets)]
    )


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    # A lone trailing image would break BatchNorm (ResNet) in training mode: fold it in.
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: TrainConfig,
    device: torch.device,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass in training mode; returns (mean loss, accuracy) over the epoch's samples."""
    model.train()
    total_loss, correct = 0.0, 0
    for index in _batches(len(images), config.batch_size, generator):
        batch = images[index]
        if config.augment:
            batch = _augment(batch, generator)
        x = to_input(batch.to(device))
        y = labels[index].to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
        correct += int((logits.detach().argmax(1) == y).sum())
    return total_loss / len(images), correct / len(images)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: TrainConfig,
    n_classes: int,
    seed: int,
    init_state: Mapping[str, torch.Tensor] | None = None,
    epochs: int | None = None,
    progress: Callable[[EpochStats], None] | None = None,
) -> TrainedModel:
    """Train `config.model` with Adam and cross-entropy on uint8 images.

    Args:
        images: uint8 tensor N x 3 x S x S.
        labels: int64 tensor N with values in [0, n_classes).
        config: epochs, batch size, learning rate, augmentation, device, model.
        n_classes: number of classes (output logits).
        seed: seeds initialisation, dropout, shuffling and augmentation.
        init_state: state dict to start from instead of a fresh initialisation (fine-tuning).
        epochs: overrides `config.epochs`.
        progress: called after each epoch with its stats.

    Returns:
        The model (CPU, eval mode) and its per-epoch history.
    """
    # 1. Check inputs
    _check_data(images, labels, n_classes)
    epochs = config.epochs if epochs is None else epochs
    if epochs <= 0:
        raise ValueError(f"`epochs` must be positive, got {epochs}")
    device = torch.device(resolve_device(config.device))
    size = images.shape[-1]
    cuda = []
    if device.type == "cuda":  # a bare "cuda" means the current device, which fork_rng must save
        cuda = [torch.cuda.current_device() if device.index is None else device.index]
    history = []
    # fork_rng restores the caller's RNG state afterwards: no global seeding leaks out.
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)  # init + dropout; CPU only, unlike manual_seed
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        # 2. Build the model
        model = build_model(config.model, n_classes, size, config.pretrained_weights)
        if init_state is not None:
            model.load_state_dict(init_state)
        model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        generator = torch.Generator().manual_seed(seed)  # shuffling + augmentation
        # 3. Train
        for epoch in range(1, epochs + 1):
            loss, accuracy = _run_epoch(
                model, optimizer, images, labels, config=config, device=device, generator=generator
            )
            stats = EpochStats(epoch=epoch, loss=loss, accuracy=accuracy)
            history.append(stats)
            if progress is not None:
                progress(stats)
    model.to("cpu").eval()
    return TrainedModel(
        model=model,
        model_name=config.model,
        n_classes=n_classes,
        size=size,
        seed=seed,
        device=str(device),
        history=tuple(history),
    )


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    n_classes: int,
    size: int,
    class_names: Sequence[str],
    train_config: TrainConfig,
    recipe: RecipeConfig | None,
    seed: int,
    history: Sequence[EpochStats],
) -> Checkpoint:
    """Write a self-describing checkpoint atomically: plain types and tensors only.

    The file loads with `torch.load(..., weights_only=True)` and rebuilds the model alone.

    Returns:
        The checkpoint's path and sha256 digest.
    """
    if len(class_names) != n_classes:
        raise ValueError(f"`class_names` has {len(class_names)} names for {n_classes} classes")
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "model_name": model_name,
        "n_classes": int(n_classes),
        "size": int(size),
        "class_names": [str(name) for name in class_names],
        "train_config": train_config.model_dump(mode="json"),
        "recipe": None if recipe is None else recipe.model_dump(mode="json"),
        "seed": int(seed),
        "history": [
            {"epoch": s.epoch, "loss": s.loss, "accuracy": s.accuracy, "phase": s.phase}
            for s in history
        ],
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    digest = atomic_write_bytes(path, buf.getvalue())
    return Checkpoint(path=str(path), digest=digest)


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError for unsafe globals, RuntimeError for bad zips
        raise CheckpointError(
            f"refusing to load checkpoint {str(path)!r}: it is not plain data + tensors "
            f"loadable with weights_only=True ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a datasynth checkpoint")
    if payload.get("version") != _VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {payload.get('version')!r}, "
            f"this code reads version {_VERSION}"
        )
    return payload


def load_checkpoint(path: str | Path) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model (CPU, eval mode) and its description from a checkpoint file alone.

    Raises:
        CheckpointError: missing file, arbitrary pickled objects, or not a datasynth checkpoint.
    """
    path = Path(path)
    payload = _read_payload(path)
    train_config = TrainConfig.model_validate(payload["train_config"])
    # The weights are all in the file: the pretrained file need not exist on this machine.
    with torch.random.fork_rng(devices=[]):  # the throwaway init must not consume caller RNG
        model = build_model(payload["model_name"], payload["n_classes"], payload["size"], None)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    recipe = payload["recipe"]
    info = CheckpointInfo(
        path=str(path),
        digest=sha256_file(path),
        model_name=payload["model_name"],
        n_classes=payload["n_classes"],
        size=payload["size"],
        class_names=tuple(payload["class_names"]),
        train_config=train_config,
        recipe=None if recipe is None else RecipeConfig.model_validate(recipe),
        seed=payload["seed"],
        history=tuple(EpochStats(**s) for s in payload["history"]),
    )
    return model, info
