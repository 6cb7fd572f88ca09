"""Prefect task: train one recipe with one seed into a checkpoint (cached on its inputs)."""

from __future__ import annotations

from pathlib import Path

from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.data import TensorSet
from synth.training import Checkpoint, train_checkpoint
from tasks.caching import science_task
from tasks.gpu_slots import gpu_slot

__all__ = ["train_recipe_seed"]


@science_task(train_checkpoint, name="train", task_run_name="train-{recipe.name}-seed{seed}")
def train_recipe_seed(
    recipe: RecipeConfig,
    seed: int,
    real_train: TensorSet,
    synthetic: TensorSet | None,  # None: a real-only recipe (no synthetic input)
    config: TrainConfig,
    class_names: tuple[str, ...],
    models_dir: str,
    preprocess: PreprocessConfig | None = None,
) -> Checkpoint:
    """Train `recipe` on the cached tensors; adding a recipe later trains only the new one.
    On a GPU it holds the card's limit while it trains (tasks/gpu_slots.py)."""
    with gpu_slot(config.device):
        return train_checkpoint(
            recipe,
            seed,
            real_train,
            synthetic,
            config,
            class_names,
            Path(models_dir),
            preprocess=preprocess,
        )
