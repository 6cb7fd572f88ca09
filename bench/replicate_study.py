"""Replicate the study's real-only baseline: the StudyCNN on its 220 / 55 split, one run per seed.

Reads an ExperimentConfig (default `configs/replication-real-only.toml`) and drives synth
directly, without Prefect: `import_real_dataset` (the study's train/ and test/ kept), letterbox
to 64 x 64 (`build_tensor_set`), `train_recipe` with the 'real' recipe for each seed, and
`evaluate_model` on the 55 test photos. Prints per-seed metrics, mean +- 95% CI over seeds
(`mean_ci`, Student t) and the study's numbers beside them.

The study's precision and recall match sklearn's *weighted* averages (its recall equals its
accuracy, which weighted recall always does), so those are compared; macro F1 is shown too.

`--variants` also runs preprocessing/training variants (padding colour, resampling filter,
augmentation). They are scored on the same 55 test photos, as the study had no validation split:
they show sensitivity, and the headline stays the config's settings, chosen before looking.

    uv run python bench/replicate_study.py [--config PATH] [--real-data DIR] [--variants]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

import synth.data.preprocess
from synth.config import ExperimentConfig, PreprocessConfig, RecipeConfig, TrainConfig, load_config
from synth.data import (
    RealDataset,
    build_tensor_set,
    import_real_dataset,
    load_tensor_set,
    real_items,
)
from synth.evaluation import EvalMetrics, evaluate_model
from synth.training import mean_ci, train_recipe

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "replication-real-only.toml"
# The study's real-only CNN on its 55 test images (precision/recall/F1: weighted averages).
STUDY = {
    "accuracy": 0.9636,
    "precision_weighted": 0.9655,
    "recall_weighted": 0.9636,
    "f1_weighted": 0.9630,
    "roc_auc_ovr": 0.9865,
}
METRICS = (*STUDY, "f1_macro")
TARGET_ACCURACY = 0.93  # mean accuracy over seeds


@dataclass(frozen=True)
class Variant:
    """One way to preprocess and train; `resample` None keeps synth's LANCZOS."""

    name: str
    padding: str = "black"
    resample: Image.Resampling | None = None
    augment: bool = False


VARIANTS = (
    Variant("config (black bars, LANCZOS, no augmentation)"),
    Variant("white bars", padding="white"),
    Variant("mean-colour bars", padding="mean"),
    Variant("BILINEAR resize", resample=Image.Resampling.BILINEAR),
    Variant("augmentation on (flips + shifts)", augment=True),
)


@dataclass(frozen=True)
class SeedRun:
    seed: int
    metrics: EvalMetrics
    seconds: float


@contextmanager
def _resample(filter_: Image.Resampling | None) -> Iterator[None]:
    """Swap synth's letterbox filter for a variant (module constant), then restore it."""
    saved = synth.data.preprocess.RESAMPLE
    if filter_ is not None:
        synth.data.preprocess.RESAMPLE = filter_
    try:
        yield
    finally:
        synth.data.preprocess.RESAMPLE = saved


def run_variant(
    dataset: RealDataset, cfg: ExperimentConfig, variant: Variant, tmp: Path
) -> list[SeedRun]:
    """Preprocess train + test as `variant` says, then train and score one model per seed."""
    pre = PreprocessConfig(
        size=cfg.preprocess.size, padding=variant.padding, seed=cfg.preprocess.seed
    )
    with _resample(variant.resample):
        train_set = build_tensor_set(real_items(dataset, "train"), tmp / "train.pt", pre)
        test_set = build_tensor_set(real_items(dataset, "test"), tmp / "test.pt", pre)
    train, test = load_tensor_set(train_set.path), load_tensor_set(test_set.path)
    config = cfg.train.model_copy(update={"augment": variant.augment or cfg.train.augment})
    empty = torch.empty((0, 3, pre.size, pre.size), dtype=torch.uint8)  # no synthetic pool
    runs = []
    for seed in cfg.seeds:
        start = time.perf_counter()
        trained = train_recipe(
            RecipeConfig(name="real", kind="real"),
            train.images,
            train.labels,
            empty,
            torch.empty(0, dtype=torch.int64),
            config=TrainConfig.model_validate(config.model_dump()),
            n_classes=len(dataset.classes),
            seed=seed,
        )
        metrics = evaluate_model(trained.model, test.images, test.labels, dataset.classes)
        runs.append(SeedRun(seed, metrics, time.perf_counter() - start))
    return runs


def _summary(runs: list[SeedRun]) -> dict[str, tuple[float, float]]:
    return {m: mean_ci([getattr(r.metrics, m) for r in runs]) for m in METRICS}


def print_runs(title: str, runs: list[SeedRun]) -> None:
    """Per-seed rows, then mean +- CI and the study's values."""
    print(f"\n### {title}\n")
    print("| seed | " + " | ".join(METRICS) + " | errors | s |")
    print("|---" * (len(METRICS) + 3) + "|")
    for r in runs:
        values = " | ".join(f"{getattr(r.metrics, m):.4f}" for m in METRICS)
        print(f"| {r.seed} | {values} | {len(r.metrics.misclassified)} | {r.seconds:.0f} |")
    summary = _summary(runs)
    print(
        "| mean ± 95% CI | "
        + " | ".join(f"{mean:.4f} ± {half:.4f}" for mean, half in summary.values())
        + " | | |"
    )
    study = " | ".join(f"{STUDY[m]:.4f}" if m in STUDY else "n/a" for m in METRICS)
    print(f"| study | {study} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="ExperimentConfig TOML")
    parser.add_argument("--real-data", help="override the config's real_data folder")
    parser.add_argument("--variants", action="store_true", help="also run the variants")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible)")
    parser.add_argument("--json", help="write all runs' summary metrics to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # 1. Config and real data (paths in the config are relative to the repository root)
    overrides = {"real_data": args.real_data} if args.real_data else {}
    cfg = load_config(args.config, ExperimentConfig, overrides)
    root = Path(cfg.real_data) if Path(cfg.real_data).is_absolute() else REPO / cfg.real_data
    if not root.is_dir():
        raise SystemExit(
            f"real_data {str(root)!r} does not exist (the full-resolution photos are only on the "
            "team's machines); try --real-data data/fruits"
        )
    classes = tuple(c.name for c in cfg.generation.classes)
    start = time.perf_counter()
    dataset = import_real_dataset(root, classes=classes, test_fraction=cfg.test_fraction)
    counts = {split: sum(per_class.values()) for split, per_class in dataset.counts().items()}
    print(
        f"{root}: train {counts['train']}, test {counts['test']} images, "
        f"{len(dataset.quarantined)} quarantined, import {time.perf_counter() - start:.0f} s"
    )

    # 2. The config's settings, then (optionally) every variant
    results = {}
    for variant in VARIANTS if args.variants else VARIANTS[:1]:
        with tempfile.TemporaryDirectory() as tmp:
            runs = run_variant(dataset, cfg, variant, Path(tmp))
        print_runs(f"{variant.name}: {root.name}, seeds {list(cfg.seeds)}", runs)
        results[variant.name] = {
            "per_seed": {r.seed: {m: getattr(r.metrics, m) for m in METRICS} for r in runs},
            "mean_ci": _summary(runs),
        }

    # 3. Result line (the config's settings only)
    head = results[VARIANTS[0].name]["mean_ci"]
    acc, half = head["accuracy"]
    verdict = "met" if acc >= TARGET_ACCURACY else "MISSED"
    print(
        f"\nRESULT replication ({root.name}): accuracy {acc:.4f} ± {half:.4f} over "
        f"{len(cfg.seeds)} seeds vs study {STUDY['accuracy']:.4f} "
        f"(target mean >= {TARGET_ACCURACY}: {verdict}); F1 {head['f1_weighted'][0]:.4f}, "
        f"ROC-AUC {head['roc_auc_ovr'][0]:.4f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"total {time.perf_counter() - start:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
