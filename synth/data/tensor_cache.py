"""Real splits and synthetic datasets as cached tensor files, each named after its inputs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from synth.config import PreprocessConfig
from synth.data.preprocess import PreprocessItem, TensorSet, build_tensor_set, real_items
from synth.data.real_import import RealDataset
from synth.generation.dataset import SPLIT, read_verified_rows
from synth.generation.manifest import ManifestRow
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


def synthetic_items(
    root: Path, rows: Sequence[ManifestRow], classes: tuple[str, ...]
) -> list[PreprocessItem]:
    """The images of `rows` (a dataset's planned, verified rows: `read_verified_rows`), each
    once, labelled by its class index in `classes`; rows of other classes are left out."""
    wanted = {d: i for i, d in enumerate(validate_class_names(list(classes)))}
    unique = {r.file_name: r for r in rows}  # one item per file, whatever the caller passed
    return [
        PreprocessItem(str(Path(root) / SPLIT / r.file_name), wanted[r.class_dir], r.sha256, True)
        for r in sorted(unique.values(), key=lambda r: r.file_name)
        if r.class_dir in wanted
    ]


def preprocess_synthetic(
    root: Path,
    digest: str,
    classes: tuple[str, ...],
    config: PreprocessConfig,
    cache_dir: Path,
    *,
    kept: Collection[str] | None = None,
) -> TensorSet:
    """A synthetic dataset (margins cropped, letterboxed) as a tensor file named by its digest.

    Only the dataset's planned, verified images enter, read back from its files and checked
    against `digest` (an `InputError` when they changed since generation verified them); with
    `kept` (the quality gate's `QualityReport.kept`), only those of them.
    """
    rows = read_verified_rows(Path(root), digest)
    key = content_key(digest, classes, config.model_dump())
    if kept is not None:
        rows, key = _gated(rows, frozenset(kept), key)
    out = Path(cache_dir) / f"synthetic-{key}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    return build_tensor_set(synthetic_items(Path(root), rows, classes), out, config)


def _gated(
    rows: list[ManifestRow], kept: frozenset[str], key: str
) -> tuple[list[ManifestRow], str]:
    """The rows the gate kept, and the tensor file's key for exactly that subset.

    Keyed on the kept names, not the gate's settings: a gate that keeps everything (or is
    disabled) names the same file as no gate, so comparing gate on and off builds it once.
    """
    unknown = sorted(kept - {r.file_name for r in rows})
    if unknown:
        raise ValueError(
            f"`kept` names {len(unknown)} images that are not verified rows of this dataset "
            f"(first: {unknown[:3]}); the quality gate ran on another dataset"
        )
    chosen = [r for r in rows if r.file_name in kept]
    if len(chosen) == len(rows):
        return chosen, key
    return chosen, content_key(key, sorted(kept))
