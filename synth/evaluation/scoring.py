"""Score and explain saved checkpoints: what the evaluate and explain steps run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.code_digest import code_digest
from synth.data.preprocess import TensorSet, build_tensor_set, load_tensor_set, real_items
from synth.data.real_import import RealDataset, import_real_dataset
from synth.errors import CheckpointError, InputError
from synth.evaluation.explain import explain_images, shap_plot
from synth.evaluation.metrics import EvalMetrics, evaluate_model
from synth.storage import atomic_write_bytes, content_key, encode_png
from synth.training.trainer import Checkpoint, load_checkpoint

__all__ = [
    "FOLDER_SPLITS",
    "EvalRecord",
    "evaluate_checkpoint",
    "evaluate_folder",
    "explain_checkpoint",
    "shap_file",
]

FOLDER_SPLITS = ("test", "train", "all")  # what `datasynth evaluate --split` accepts


@dataclass(frozen=True)
class EvalRecord:
    """One model scored on one test set.

    `predictions` and `labels` are per test image, in the test set's order (the same for every
    recipe and seed), so recipes can be compared image by image (paired statistics). `steps`
    is the model's optimiser steps; `real_images` / `synthetic_images` the images its recipe
    chose (None: the checkpoint does not record them).
    """

    recipe: str
    seed: int
    test_set: str
    checkpoint: str
    metrics: EvalMetrics
    predictions: tuple[int, ...] = ()
    labels: tuple[int, ...] = ()
    steps: int = 0
    real_images: int | None = None
    synthetic_images: int | None = None


def evaluate_checkpoint(checkpoint: Checkpoint, test: TensorSet, test_name: str) -> EvalRecord:
    """Score a checkpoint on a tensor test set (real held-out images)."""
    model, info = load_checkpoint(checkpoint.path)
    data = load_tensor_set(test.path, digest=test.digest)
    metrics = evaluate_model(model, data.images, data.labels, info.class_names)
    recipe = info.recipe.name if info.recipe else Path(checkpoint.path).stem
    labels = tuple(int(v) for v in data.labels.tolist())
    # The prediction is the label except where the metrics list a mistake: no second pass.
    predictions = list(labels)
    for wrong in metrics.misclassified:
        predictions[wrong.index] = wrong.predicted
    return EvalRecord(
        recipe, info.seed, test_name, checkpoint.path, metrics, tuple(predictions), labels,
        info.steps, info.real_images, info.synthetic_images,
    )  # fmt: skip


def shap_file(
    shap_dir: Path,
    label: str,
    checkpoint: Checkpoint,
    background: TensorSet,
    test: TensorSet,
    per_class: int,
    seed: int = 0,
) -> Path:
    """Where `explain_checkpoint` with these arguments saves its PNG: `<label>-<key>.png`.

    The key covers every input of the maps and the code that draws them, so another config's
    maps get another file and are never shown for this one. `seed` must be the one passed to
    `explain_checkpoint` (its default is 0 too).
    """
    key = content_key(
        checkpoint.digest, background.digest, test.digest, per_class, seed, code_digest(__name__)
    )
    return Path(shap_dir) / f"{label}-{key}.png"


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


def evaluate_folder(
    checkpoint: Path, data: Path, size: int | None = None, *, split: str = "test"
) -> dict:
    """Score a saved model on a labelled ImageFolder, preprocessed exactly as its training images.

    Args:
        checkpoint: A checkpoint written by datasynth (it records its preprocessing).
        data: `<data>/train/<Class>/` + `<data>/test/<Class>/`, or `<data>/<Class>/`.
        size: Only a check: must equal the size the model was trained on (None: no check).
        split: 'test' (default: the held-out test/ photos), 'train', or 'all'. A folder without
            train/ and test/ is scored whole, and only with 'all': which of its photos are held
            out depends on a run's split, which a folder alone does not say.

    Returns:
        The JSON-able result `datasynth evaluate` prints: the split and image count, how many of
        them trained the model, the preprocessing applied, metrics, per-class reports, confusion
        and the files the import quarantined.

    Raises:
        CheckpointError: The checkpoint records no preprocessing (written before it did).
        InputError: A bad `split` or `size`, classes that differ from the model's, bad folders.
    """
    # 1. Check inputs
    if split not in FOLDER_SPLITS:
        raise InputError(f"`split` must be one of {', '.join(FOLDER_SPLITS)}; got {split!r}")
    net, info = load_checkpoint(checkpoint)
    if info.preprocess is None:
        raise CheckpointError(
            f"checkpoint {str(checkpoint)!r} does not record how its training images were "
            "preprocessed (written by an older datasynth), so it cannot be scored faithfully: "
            "rerun `datasynth run` on its config to retrain it"
        )
    if size is not None and size != info.size:
        raise InputError(
            f"`size` {size} differs from the {info.size} px the model was trained on: leave "
            "it out, evaluate applies the checkpoint's own preprocessing"
        )
    # 2. Import the folder (classes must be the model's) and choose the photos
    dataset = import_real_dataset(data, classes=info.class_names, require_test=False)
    items = [item for s in _splits(dataset, split) for item in real_items(dataset, s)]
    if not items:  # e.g. a test/ without class folders
        raise InputError(f"{str(data)!r} has no photo in its {split!r} split to score")
    # 3. Preprocess as in training, and score
    with tempfile.TemporaryDirectory() as tmp:
        built = build_tensor_set(items, Path(tmp) / "x.pt", info.preprocess)
        tensors = load_tensor_set(built.path)
    metrics = evaluate_model(net, tensors.images, tensors.labels, info.class_names)
    duplicates = dataset.train_test_duplicates if split == "test" else ()
    return {
        "model": str(checkpoint),
        "data": str(data),
        "split": split,
        "images": len(items),
        "images_seen_in_training": sum(info.trained_on(item.key) for item in items),
        "test_images_duplicating_train": [vars(d) for d in duplicates],
        "preprocess": info.preprocess.model_dump(mode="json"),
        "quarantined": [{"path": q.path, "reason": q.reason} for q in dataset.quarantined],
        **metrics.summary(),
        "per_class": [vars(c) | {} for c in metrics.per_class],
        "confusion": metrics.confusion,
    }


def _splits(dataset: RealDataset, split: str) -> tuple[str, ...]:
    if split == "all":
        return ("train", "test")
    if not dataset.split_by_folders:
        n = len(dataset.entries)
        raise InputError(
            f"{dataset.root!r} has no train/ and test/ folders, so no held-out split of its "
            f"own: pass `--split all` to score all {n} images (the JSON counts any the model "
            "trained on)"
        )
    return (split,)
