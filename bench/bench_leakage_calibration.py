"""Calibrate the leakage audit's thresholds on data/fruits (and data/grocery-fruits).

Real-train photos are never copies of test photos, so how close they come to their nearest test
image is what a threshold must stay below (false alarms); planted copies of the test photos
(noised, blurred, brightened, flipped) are what it must catch. For each seed a real-only
StudyCNN is trained as the demo trains it, and both criteria of `synth.evaluation.leakage` are
measured in its features, beside the centred cosine the audit used before (threshold 0.95).

    uv run python bench/bench_leakage_calibration.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from synth.config import PreprocessConfig, TrainConfig
from synth.data.image_hash import hamming_distance
from synth.data.preprocess import build_tensor_set, load_tensor_set, real_items
from synth.data.real_import import import_real_dataset
from synth.evaluation.domain_gap import classifier_features
from synth.evaluation.leakage import (
    DISTANCE_THRESHOLD,
    HASH_THRESHOLD,
    audit_leakage,
    perceptual_hash,
)
from synth.training.trainer import train_classifier

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("apple", "banana", "orange")


def _tensors(root: Path, split: str, out: Path):
    dataset = import_real_dataset(root, classes=CLASSES, require_test=split != "all")
    entries = real_items(dataset, "train") + real_items(dataset, "test")
    items = entries if split == "all" else real_items(dataset, split)
    ref = build_tensor_set(items, out / f"{root.name}-{split}.pt", PreprocessConfig())
    return load_tensor_set(ref.path)


def _perturbed(images: torch.Tensor, how: str, seed: int) -> torch.Tensor:
    """Copies of `images` as a generator might return them."""
    gen = torch.Generator().manual_seed(seed)
    x = images.float()
    if how == "blurred":  # down to 3/4 size and back up: detail lost, layout kept
        size = images.shape[-1]
        small = torch.nn.functional.interpolate(x, size=size * 3 // 4, mode="bilinear")
        x = torch.nn.functional.interpolate(small, size=size, mode="bilinear")
    elif how == "brighter":
        x = x * 1.1
    elif how == "flipped":
        x = x.flip(-1)
    x = x + torch.randint(-3, 4, x.shape, generator=gen)  # every copy is re-encoded, a little
    return x.round().clamp(0, 255).to(torch.uint8)


def _centred_cosine(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nearest-test cosine after centring on the test mean: the audit's former criterion."""
    a, t = a - t.mean(0), t - t.mean(0)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return (a @ t.T).max(1)


def _row(seed, test_name, who, audit, cosines, n):
    d = np.array([nb.distance for nb in audit.neighbours])
    bits = np.array([nb.hash_min for nb in audit.neighbours])
    flagged = audit.n_suspect_images
    print(
        f"| {seed} | {test_name} | {who} | {d.min():.3f} | {np.median(d):.3f} | {d.max():.3f} | "
        f"{bits.min()} | {np.median(bits):.0f} | {flagged}/{n} | "
        f"{np.median(cosines):.3f} | {(cosines >= 0.95).sum()}/{n} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        train = _tensors(REPO / "data" / "fruits", "train", out)
        tests = {
            "real-test": _tensors(REPO / "data" / "fruits", "test", out),
            "grocery-fruits": _tensors(REPO / "data" / "grocery-fruits", "all", out),
        }
    kaggle = tests["real-test"].images
    kinds = ("noised", "blurred", "brighter", "flipped")
    copies = {how: _perturbed(kaggle, how, 0) for how in kinds}
    originals = [perceptual_hash(img) for img in kaggle]
    hash_bits = {
        how: [hamming_distance(perceptual_hash(a), h) for a, h in zip(c, originals, strict=True)]
        for how, c in copies.items()
    }
    print(f"thresholds: relative distance <= {DISTANCE_THRESHOLD}, hash <= {HASH_THRESHOLD} bits")
    print("| seed | test set | images | dist min | dist median | dist max | hash min | "
          "hash median | flagged | centred cos median | cos >= 0.95 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        model = train_classifier(
            train.images, train.labels, config=TrainConfig(device="cpu"), n_classes=3, seed=seed
        ).model
        train_f = classifier_features(model, train.images)
        for name, test in tests.items():
            test_f = classifier_features(model, test.images)
            audit = audit_leakage(train.images, train_f, test.images, test_f)
            cos = _centred_cosine(train_f, test_f)
            _row(seed, name, "real-train (no copies)", audit, cos, len(train.images))
        test_f = classifier_features(model, kaggle)
        for how, images in copies.items():
            feats = classifier_features(model, images)
            audit = audit_leakage(images, feats, kaggle, test_f)
            cos = _centred_cosine(feats, test_f)
            _row(seed, "real-test", f"{how} copies", audit, cos, len(images))
    for how, bits in hash_bits.items():
        print(f"{how} copies: hash bits to their original median {np.median(bits):.0f}, "
              f"max {max(bits)}")  # fmt: skip


if __name__ == "__main__":
    main()
