"""Prefect tasks: real and synthetic images to cached uint8 tensor files."""

from __future__ import annotations

from pathlib import Path

from synth.config import PreprocessConfig
from synth.data import RealDataset, TensorSet, preprocess_real, preprocess_synthetic
from synth.data.quality_gate import QualityReport
from tasks.caching import science_task

__all__ = ["preprocess_real_split", "preprocess_synthetic_set"]


@science_task(preprocess_real, name="preprocess-real", task_run_name="preprocess-real-{split}")
def preprocess_real_split(
    dataset: RealDataset, split: str, config: PreprocessConfig, cache_dir: str
) -> TensorSet:
    """Letterbox one split of the real photos into a tensor file (cached on its digest)."""
    return preprocess_real(dataset, split, config, Path(cache_dir))


@science_task(preprocess_synthetic, name="preprocess-synthetic")
def preprocess_synthetic_set(
    root: str,
    digest: str,
    classes: tuple[str, ...],
    config: PreprocessConfig,
    cache_dir: str,
    gate: QualityReport | None = None,
) -> TensorSet:
    """Crop margins and letterbox the synthetic images into a tensor file (cached on digest);
    with `gate`, only the images it kept."""
    kept = None if gate is None else gate.kept
    return preprocess_synthetic(Path(root), digest, classes, config, Path(cache_dir), kept=kept)
