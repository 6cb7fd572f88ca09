"""Train a classifier on uint8 image tensors, and save/load self-describing checkpoints.

Training is seeded end to end without touching the caller's random state: the model is built and
trained under `torch.random.fork_rng()`, and shuffling and augmentation draw from their own
`torch.Generator`. On the CPU the same inputs and seed give bit-identical weights.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.devices import resolve_device
from synth.errors import CheckpointError
from synth.storage import atomic_write_bytes, sha256_file
from synth.training.augment import Augmentation, flip_shift
from synth.training.models import build_model, to_input

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointInfo",
    "EpochStats",
    "TrainedModel",
    "load_checkpoint",
    "save_checkpoint",
    "steps_per_epoch",
    "train_classifier",
]

_FORMAT = "datasynth-checkpoint"
# 2 adds `preprocess` and `train_image_keys`; version 1 files still load, with neither.
_VERSION = 2
_READABLE = (1, 2)
_KEY_CHARS = 16  # 64 bits of a sha256: odds of any clash among 200k images are ~1e-9


@dataclass(frozen=True)
class EpochStats:
    """One pass over the training set: mean loss and accuracy on the (augmented) batches."""

    epoch: int  # 1-based, counted within its phase
    loss: float
    accuracy: float
    phase: str = "train"  # 'train', or 'pretrain' / 'finetune' for pretrain-finetune recipes
    steps: int = 0  # optimiser steps in this epoch (0: recorded before steps were)


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

    @property
    def steps(self) -> int:
        """Optimiser steps over all epochs (and phases): the training budget it got."""
        return sum(s.steps for s in self.history)


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
    # How the training tensors were made (None: written before checkpoints recorded it), so
    # scoring new photos applies exactly the same size, padding and seed.
    preprocess: PreprocessConfig | None = None
    # sha256 prefixes of the images it trained on, to tell seen photos from held-out ones.
    train_image_keys: frozenset[str] = frozenset()
    # How many real and synthetic images its recipe chose (None: not recorded), for the
    # exchange rate of synthetic for real images.
    real_images: int | None = None
    synthetic_images: int | None = None

    @property
    def steps(self) -> int:
        """Optimiser steps over all epochs (0 for checkpoints written before steps were kept)."""
        return sum(s.steps for s in self.history)

    def trained_on(self, sha256: str) -> bool:
        """Whether the file with this sha256 (hex) was one of the model's training images."""
        return sha256[:_KEY_CHARS] in self.train_image_keys


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


_augment = flip_shift  # its old name here, which tests/test_train.py still imports


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps of one pass over `n` images (a lone trailing image joins the last batch)."""
    steps = -(-n // batch_size)
    return steps - 1 if steps > 1 and n % batch_size == 1 else steps


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
    augment: Augmentation | None,
    max_steps: int | None = None,
) -> EpochStats:
    """One pass in training mode, cut short after `max_steps` steps; its loss, accuracy, steps.

    The shuffle is drawn whole even when the pass is cut short, so a budget that ends on an
    epoch boundary trains exactly as whole epochs would.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    batches = _batches(len(images), config.batch_size, generator)
    for index in batches[:max_steps]:
        batch = images[index]
        if augment is not None:
            batch = augment(batch, generator)
        x = to_input(batch.to(device))
        y = labels[index].to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += len(index)
    steps = len(batches[:max_steps])
    return EpochStats(epoch=0, loss=total_loss / seen, accuracy=correct / seen, steps=steps)


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: TrainConfig,
    n_classes: int,
    seed: int,
    init_state: Mapping[str, torch.Tensor] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    augment: Augmentation | None = None,
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
        steps: train exactly this many optimiser steps instead of whole epochs (the last
            epoch may be partial); the recipes' equal-steps budget.
        augment: per-batch augmentation (e.g. `synth.training.augment.strong_augment`);
            default: `flip_shift` when `config.augment`, else none.
        progress: called after each epoch with its stats.

    Returns:
        The model (CPU, eval mode) and its per-epoch history.
    """
    # 1. Check inputs
    _check_data(images, labels, n_classes)
    epochs = config.epochs if epochs is None else epochs
    if epochs <= 0:
        raise ValueError(f"`epochs` must be positive, got {epochs}")
    if steps is not None and steps <= 0:
        raise ValueError(f"`steps` must be positive, got {steps}")
    if augment is None and config.augment:
        augment = flip_shift
    per_epoch = steps_per_epoch(len(images), config.batch_size)
    if steps is not None:
        epochs = -(-steps // per_epoch)
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
            left = None if steps is None else steps - (epoch - 1) * per_epoch
            stats = _run_epoch(
                model, optimizer, images, labels, config=config, device=device,
                generator=generator, augment=augment, max_steps=left,
            )  # fmt: skip
            stats = replace(stats, epoch=epoch)
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
    preprocess: PreprocessConfig | None = None,
    train_image_keys: Sequence[str] = (),
    real_images: int | None = None,
    synthetic_images: int | None = None,
) -> Checkpoint:
    """Write a self-describing checkpoint atomically: plain types and tensors only.

    The file loads with `torch.load(..., weights_only=True)` and rebuilds the model alone.

    Args:
        preprocess: The settings the training tensors were made with; `datasynth evaluate`
            applies them to new photos (without them it refuses to score).
        train_image_keys: sha256 of the images the model could train on; stored as 16-hex
            prefixes so evaluation can count training photos among the ones it scores.
        real_images: Real images the recipe chose (None: unknown).
        synthetic_images: Synthetic images it chose, pretraining ones included.

    Returns:
        The checkpoint's path and sha256 digest.
    """
    if len(class_names) != n_classes:
        raise ValueError(f"`class_names` has {len(class_names)} names for {n_classes} classes")
    if preprocess is not None and preprocess.size != size:
        raise ValueError(f"`preprocess.size` {preprocess.size} differs from `size` {size}")
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
            {
                "epoch": s.epoch,
                "loss": s.loss,
                "accuracy": s.accuracy,
                "phase": s.phase,
                "steps": s.steps,
            }
            for s in history
        ],
        "preprocess": None if preprocess is None else preprocess.model_dump(mode="json"),
        "train_image_keys": sorted({str(k)[:_KEY_CHARS] for k in train_image_keys}),
        "images": {"real": real_images, "synthetic": synthetic_images},
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
    if payload.get("version") not in _READABLE:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {payload.get('version')!r}, "
            f"this code reads versions {list(_READABLE)}"
        )
    return payload


def _preprocess_of(path: Path, stored: dict[str, Any]) -> PreprocessConfig:
    try:
        return PreprocessConfig.model_validate(stored)
    except ValidationError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} records preprocessing settings this version cannot "
            f"read ({exc.error_count()} errors, first: {exc.errors()[0]['msg']})"
        ) from None


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
    recipe, preprocess = payload["recipe"], payload.get("preprocess")
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
        preprocess=None if preprocess is None else _preprocess_of(path, preprocess),
        train_image_keys=frozenset(payload.get("train_image_keys", ())),
        real_images=payload.get("images", {}).get("real"),
        synthetic_images=payload.get("images", {}).get("synthetic"),
    )
    return model, info
