"""Real splits and synthetic datasets as cached tensor files, each named after its inputs."""

from __future__ import annotations

from pathlib import Path

from synth.config import PreprocessConfig
from synth.data.preprocess import PreprocessItem, TensorSet, build_tensor_set, real_items
from synth.data.real_import import RealDataset
from synth.generation.dataset import SPLIT, manifest_path
from synth.generation.manifest import read_manifest
from synth.naming import validate_class_names
from synth.storage import content_key

__all__ = ["preprocess_real", "preprocess_synthetic", "synthetic_items"]


def preprocess_real(
    dataset: RealDataset, split: str, config: PreprocessConfig, cache_dir: Path
) -> TensorSet:
    """One split ('train', 'test' or 'all') of a real dataset as a tensor file named by digest."""
    key = content_key(dataset.digest, split, config.model_dump())
    out = Path(cache_dir) / f"real-{split}-{key}.pt"
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
    key = content_key(digest, classes, config.model_dump())
    out = Path(cache_dir) / f"synthetic-{key}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    return build_tensor_set(synthetic_items(Path(root), classes), out, config)
