"""The study's steps as plain functions over files: each one is what one Prefect task runs.

Inputs and outputs are small references (paths + digests), so every step can be cached on them
and checked afterwards: `FileRef.is_valid()` tells whether the file a result points at is still
the one that was written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.dataset import SPLIT, manifest_path
from synth.evaluate import EvalMetrics, evaluate_model
from synth.explain import explain_images, shap_plot
from synth.manifest import read_manifest
from synth.naming import validate_class_names
from synth.preprocess import (
    PreprocessItem,
    TensorSet,
    build_tensor_set,
    load_tensor_set,
    real_items,
)
from synth.realdata import RealDataset
from synth.recipes import mean_ci, train_recipe
from synth.storage import atomic_write_bytes, encode_png, sha256_file
from synth.train import Checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "EvalRecord",
    "evaluate_checkpoint",
    "explain_checkpoint",
    "is_valid",
    "preprocess_real",
    "preprocess_synthetic",
    "recipe_table",
    "train_checkpoint",
]

SUMMARY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc_ovr")


@dataclass(frozen=True)
class EvalRecord:
    """One model scored on one test set."""

    recipe: str
    seed: int
    test_set: str
    checkpoint: str
    metrics: EvalMetrics


def is_valid(ref: TensorSet | Checkpoint) -> bool:
    """True while the file `ref` points at exists with the digest recorded when it was written."""
    path = Path(ref.path)
    return path.is_file() and sha256_file(path) == ref.digest


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def preprocess_real(
    dataset: RealDataset, split: str, config: PreprocessConfig, cache_dir: Path
) -> TensorSet:
    """One split ('train', 'test' or 'all') of a real dataset as a tensor file named by digest."""
    out = Path(cache_dir) / f"real-{split}-{_key(dataset.digest, split, config.model_dump())}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    splits = ("train", "test") if split == "all" else (split,)
    items = [item for s in splits for item in real_items(dataset, s)]
    return build_tensor_set(items, out, config)


def synthetic_items(root: Path, classes: tuple[str, ...]) -> list[PreprocessItem]:
    """Every counted image of a synthetic dataset, labelled by its class index in `classes`."""
    wanted = {d: i for i, d in enumerate(validate_class_names(list(classes)))}
    rows = sorted(read_manifest(manifest_path(root)), key=lambda r: r.file_name)
    return [
        PreprocessItem(str(Path(root) / SPLIT / r.file_name), wanted[r.class_dir], r.sha256, True)
        for r in rows
        if r.class_dir in wanted
    ]


def preprocess_synthetic(
    root: Path, digest: str, classes: tuple[str, ...], config: PreprocessConfig, cache_dir: Path
) -> TensorSet:
    """A synthetic dataset (margins cropped, letterboxed) as a tensor file named by its digest."""
    out = Path(cache_dir) / f"synthetic-{_key(digest, classes, config.model_dump())}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    return build_tensor_set(synthetic_items(Path(root), classes), out, config)


def train_checkpoint(
    recipe: RecipeConfig,
    seed: int,
    real_train: TensorSet,
    synthetic: TensorSet,
    config: TrainConfig,
    class_names: tuple[str, ...],
    models_dir: Path,
) -> Checkpoint:
    """Train `recipe` with `seed` on the cached tensors and save a self-describing checkpoint."""
    real = load_tensor_set(real_train.path, digest=real_train.digest)
    syn = load_tensor_set(synthetic.path, digest=synthetic.digest)
    trained = train_recipe(
        recipe,
        real.images,
        real.labels,
        syn.images,
        syn.labels,
        config=config,
        n_classes=len(class_names),
        seed=seed,
    )
    inputs = _key(
        recipe.model_dump(), seed, real_train.digest, synthetic.digest, config.model_dump()
    )
    path = Path(models_dir) / f"{recipe.name}-seed{seed}-{inputs}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(
        path,
        trained.model,
        model_name=trained.model_name,
        n_classes=trained.n_classes,
        size=trained.size,
        class_names=class_names,
        train_config=config,
        recipe=recipe,
        seed=seed,
        history=trained.history,
    )


def evaluate_checkpoint(checkpoint: Checkpoint, test: TensorSet, test_name: str) -> EvalRecord:
    """Score a checkpoint on a tensor test set (real held-out images)."""
    model, info = load_checkpoint(checkpoint.path)
    data = load_tensor_set(test.path, digest=test.digest)
    metrics = evaluate_model(model, data.images, data.labels, info.class_names)
    recipe = info.recipe.name if info.recipe else Path(checkpoint.path).stem
    return EvalRecord(recipe, info.seed, test_name, checkpoint.path, metrics)


def explain_checkpoint(
    checkpoint: Checkpoint,
    background: TensorSet,
    test: TensorSet,
    per_class: int,
    out_file: Path,
    seed: int = 0,
) -> str:
    """SHAP maps of `per_class` test images per class, saved as one PNG; returns its path."""
    model, info = load_checkpoint(checkpoint.path)
    bg = load_tensor_set(background.path, digest=background.digest)
    data = load_tensor_set(test.path, digest=test.digest)
    picks = [
        i
        for c in range(info.n_classes)
        for i in (data.labels == c).nonzero().flatten().tolist()[:per_class]
    ]
    index = torch.tensor(picks, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    bg_index = torch.randperm(len(bg.images), generator=gen)[:32]
    explanation = explain_images(
        model,
        bg.images[bg_index],
        data.images[index],
        data.labels[index],
        info.class_names,
        seed=seed,
    )
    image = shap_plot(explanation, data.images[index], info.class_names)
    buf = Path(out_file)
    buf.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(buf, encode_png(image))
    return str(buf)


def recipe_table(records: list[EvalRecord], test_set: str) -> list[dict]:
    """The study's comparison table: per recipe, mean and 95% CI of each metric over seeds."""
    rows = []
    recipes = dict.fromkeys(r.recipe for r in records if r.test_set == test_set)
    for recipe in recipes:
        mine = [r for r in records if r.recipe == recipe and r.test_set == test_set]
        row: dict = {"recipe": recipe, "seeds": len(mine)}
        for metric in SUMMARY_METRICS:
            values = [getattr(r.metrics, metric) for r in mine]
            if any(v is None for v in values):
                row[f"{metric}_mean"], row[f"{metric}_ci"] = None, None
                continue
            mean, half = mean_ci(values)
            row[f"{metric}_mean"], row[f"{metric}_ci"] = round(mean, 4), round(half, 4)
        rows.append(row)
    return rows
