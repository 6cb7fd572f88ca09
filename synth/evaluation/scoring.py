"""Score and explain saved checkpoints: what the evaluate and explain steps run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.config import PreprocessConfig
from synth.data.preprocess import TensorSet, build_tensor_set, load_tensor_set, real_items
from synth.data.real_import import import_real_dataset
from synth.evaluation.explain import explain_images, shap_plot
from synth.evaluation.metrics import EvalMetrics, evaluate_model
from synth.storage import atomic_write_bytes, encode_png
from synth.training.trainer import Checkpoint, load_checkpoint

__all__ = ["EvalRecord", "evaluate_checkpoint", "evaluate_folder", "explain_checkpoint"]


@dataclass(frozen=True)
class EvalRecord:
    """One model scored on one test set."""

    recipe: str
    seed: int
    test_set: str
    checkpoint: str
    metrics: EvalMetrics


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
    """SHAP maps of `per_class` test images per class, saved as one PNG; returns its path.

    The background is drawn once, inside `explain_images`, seeded by `seed`.
    """
    model, info = load_checkpoint(checkpoint.path)
    bg = load_tensor_set(background.path, digest=background.digest)
    data = load_tensor_set(test.path, digest=test.digest)
    picks = [
        i
        for c in range(info.n_classes)
        for i in (data.labels == c).nonzero().flatten().tolist()[:per_class]
    ]
    index = torch.tensor(picks, dtype=torch.long)
    explanation = explain_images(
        model, bg.images, data.images[index], data.labels[index], info.class_names, seed=seed
    )
    image = shap_plot(explanation, data.images[index], info.class_names)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, encode_png(image))
    return str(out)


def evaluate_folder(checkpoint: Path, data: Path, size: int | None = None) -> dict:
    """Score a saved model on a labelled ImageFolder; the JSON-able result `datasynth evaluate`
    prints (metrics, per-class reports, confusion and the files the import quarantined)."""
    net, info = load_checkpoint(checkpoint)
    dataset = import_real_dataset(data, classes=info.class_names)
    items = real_items(dataset, "train") + real_items(dataset, "test")
    with tempfile.TemporaryDirectory() as tmp:
        pre = PreprocessConfig(size=size or info.size)
        tensors = load_tensor_set(build_tensor_set(items, Path(tmp) / "x.pt", pre).path)
    metrics = evaluate_model(net, tensors.images, tensors.labels, info.class_names)
    return {
        "model": str(checkpoint),
        "data": str(data),
        "images": len(items),
        "quarantined": [{"path": q.path, "reason": q.reason} for q in dataset.quarantined],
        **metrics.summary(),
        "per_class": [vars(c) | {} for c in metrics.per_class],
        "confusion": metrics.confusion,
    }
