"""Training: classifier architectures, the trainer, and the recipe registry."""

from __future__ import annotations

from synth.errors import CheckpointError
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
    select_training_indices,
    train_checkpoint,
    train_recipe,
)
from synth.training.trainer import (
    Checkpoint,
    CheckpointInfo,
    EpochStats,
    TrainedModel,
    load_checkpoint,
    save_checkpoint,
    train_classifier,
)

__all__ = [
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
    "load_checkpoint",
    "save_checkpoint",
    "select_training_indices",
    "to_input",
    "train_checkpoint",
    "train_classifier",
    "train_recipe",
]
