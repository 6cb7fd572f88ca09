"""Training: classifier architectures, the trainer, and the recipe registry."""

from __future__ import annotations

from synth.errors import CheckpointError
from synth.training.augment import AUGMENTATIONS, flip_shift, strong_augment
from synth.training.models import (
    ModelName,
    StudyCNN,
    build_model,
    to_input,
)
from synth.training.recipes import (
    RECIPES,
    RecipeKind,
    RecipeSelection,
    gate_recipe,
    select_training_indices,
    step_budget,
    train_checkpoint,
    train_recipe,
    uses_synthetic,
)
from synth.training.trainer import (
    Checkpoint,
    CheckpointInfo,
    EpochStats,
    TrainedModel,
    load_checkpoint,
    save_checkpoint,
    steps_per_epoch,
    train_classifier,
)

__all__ = [
    "AUGMENTATIONS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointInfo",
    "EpochStats",
    "ModelName",
    "RECIPES",
    "RecipeKind",
    "RecipeSelection",
    "StudyCNN",
    "TrainedModel",
    "build_model",
    "gate_recipe",
    "flip_shift",
    "load_checkpoint",
    "save_checkpoint",
    "select_training_indices",
    "step_budget",
    "steps_per_epoch",
    "strong_augment",
    "to_input",
    "train_checkpoint",
    "train_classifier",
    "train_recipe",
    "uses_synthetic",
]
