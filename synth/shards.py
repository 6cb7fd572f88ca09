"""Shards of one dataset: disjoint sets of its fixed batches, generated side by side.

Shard `index` of `count` owns the batches whose number is `index` modulo `count`. Batches are
fixed by the config, so the shards partition the plan the same way on every machine, and the
images do not depend on which shard (or how many) made them: the finished dataset is the one an
unsharded run writes, digest for digest.

While shards run, other shards append to the same manifest (appends are locked, see
`synth.manifest`), so a shard repairs only its own files and never rewrites the manifest. The
whole-directory repair (torn manifests, temp files, stale rows) is `prepare_output`, run by an
unsharded run; a shard run that finds the dataset complete writes `dataset.json` itself.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from synth.config import GenerationConfig
from synth.dataset import (
    SPLIT,
    DatasetState,
    PlannedImage,
    manifest_path,
    plan_images,
    scan_dataset,
    split_batches,
)
from synth.manifest import dataset_digest, read_manifest
from synth.naming import validate_class_names
from synth.storage import TEMP_MARKER, sha256_file

__all__ = ["check_shard", "prepare_shard", "shard_batches", "validate_shard"]


def validate_shard(index: int, count: int) -> None:
    """Raise `ValueError` unless 0 <= index < count."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"`shard_index` must be in 0..{count - 1} and `shard_count` at least 1, "
            f"got shard_index={index}, shard_count={count}"
        )


def shard_batches(
    config: GenerationConfig, index: int, count: int
) -> list[tuple[int, tuple[PlannedImage, ...]]]:
    """(number, items) of the fixed batches shard `index` of `count` owns."""
    validate_shard(index, count)
    batches = split_batches(plan_images(config), config.batch_size)
    return [(n, items) for n, items in enumerate(batches) if n % count == index]


def _shard_state(root: Path, config: GenerationConfig, items: list[PlannedImage]) -> DatasetState:
    """Rows of `items` whose file is there with its sha256, and the items missing."""
    split = root / SPLIT
    wanted = {item.file_name for item in items}
    rows = {}
    for row in read_manifest(manifest_path(root)):
        if row.file_name not in wanted:
            continue
        path = split / row.file_name
        if path.is_file() and sha256_file(path) == row.sha256:
            rows[row.file_name] = row
        else:
            rows.pop(row.file_name, None)
    missing = tuple(item for item in items if item.file_name not in rows)
    counts = Counter(rows[i.file_name].label for i in items if i.file_name in rows)
    return DatasetState(
        root=root,
        rows=rows,
        missing=missing,
        counts={c.name: counts.get(c.name, 0) for c in config.classes},
        digest=dataset_digest(list(rows.values())),
    )


def prepare_shard(root: Path, config: GenerationConfig, index: int, count: int) -> DatasetState:
    """Make the shard's own images consistent before generating; nothing else is touched.

    1. Create the class folders.
    2. Delete this shard's temp files left by a crash, and its files whose manifest row no
       longer matches them (corrupt): the batches regenerate both. A file that was renamed but
       never counted is simply regenerated, to the same bytes.
    Returns the state of the shard's images only.
    """
    root = Path(root)
    split = root / SPLIT
    # 1. Folders
    dirs = validate_class_names([c.name for c in config.classes])
    for d in dirs:
        (split / d).mkdir(parents=True, exist_ok=True)
    items = [item for _, batch in shard_batches(config, index, count) for item in batch]
    # 2. This shard's crash leftovers and corrupt files
    names = {item.file_name for item in items}
    temps = [
        tmp
        for d in dirs
        for tmp in (split / d).glob(f".*{TEMP_MARKER}*")
        if f"{d}/{tmp.name[1:].split(TEMP_MARKER)[0]}" in names
    ]
    for tmp in temps:
        tmp.unlink(missing_ok=True)
    state = _shard_state(root, config, items)
    corrupt = [i for i in state.missing if (split / i.file_name).is_file()]
    listed = {row.file_name for row in read_manifest(manifest_path(root))}
    for item in corrupt:
        if item.file_name in listed:  # in the manifest with another sha256
            (split / item.file_name).unlink()
    repairs = {
        "temp_files_removed": len(temps),
        "corrupt_files_removed": sum(i.file_name in listed for i in corrupt),
    }
    return DatasetState(state.root, state.rows, state.missing, state.counts, state.digest, repairs)


def check_shard(
    root: Path, config: GenerationConfig, index: int, count: int
) -> tuple[DatasetState, tuple[PlannedImage, ...]]:
    """(state of the whole dataset, images of this shard still missing).

    The whole dataset is sha256-checked only once it looks complete; before that its state is
    what the manifest and the file names say (the other shards are still writing).
    """
    root = Path(root)
    items = [item for _, batch in shard_batches(config, index, count) for item in batch]
    missing = _shard_state(root, config, items).missing
    whole = scan_dataset(root, config, verify=False)
    if not whole.missing:
        whole = scan_dataset(root, config)
    return whole, missing
