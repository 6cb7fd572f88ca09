"""The on-disk synthetic dataset: what is done, and how to bring it in line with the plan.

Layout: `<root>/train/<class_dir>/<index>.png` with `<root>/train/metadata.jsonl` beside the class
folders (torchvision `ImageFolder` and the Hugging Face `imagefolder` loader read it unchanged).

Prepare, scan and verify take a `Shard`; the whole dataset is `Shard(0, 1)`. While several shards
run, the others append to the same manifest (appends are locked, see `manifest`), so a shard only
repairs its own files and never rewrites the manifest; the whole-directory repair (torn manifest,
every temp file, stale rows, orphans) belongs to an unsharded run, which holds the dataset lock
exclusively. The run that finds the whole dataset complete writes `dataset.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from synth.config import GenerationConfig
from synth.generation.manifest import (
    ManifestRow,
    dataset_digest,
    read_manifest,
    repair_manifest,
)
from synth.generation.model_loader import ModelInfo
from synth.generation.plan import (
    WHOLE,
    DatasetRef,
    GenerationPlan,
    PlannedImage,
    Shard,
    plan_batches,
    plan_images,
)
from synth.naming import validate_class_names
from synth.storage import TEMP_MARKER, atomic_write_bytes, remove_stray_temps, sha256_file

__all__ = [
    "SPLIT",
    "DatasetState",
    "make_row",
    "manifest_path",
    "plan_generation",
    "prepare_output",
    "scan_dataset",
    "verify_dataset",
    "write_summary",
]

SPLIT = "train"


@dataclass(frozen=True)
class DatasetState:
    """What a dataset directory holds for a config: valid rows, and planned images not yet there.

    `missing` lists the shard's planned images (all of them for the whole dataset); `counts` and
    `digest` always describe the whole dataset's planned images that are done.
    """

    root: Path
    rows: dict[str, ManifestRow]
    missing: tuple[PlannedImage, ...]
    counts: dict[str, int]
    digest: str
    repairs: dict[str, int] = field(default_factory=dict)


def manifest_path(root: Path) -> Path:
    return Path(root) / SPLIT / "metadata.jsonl"


def _is_dataset_file_name(name: str) -> bool:
    """True for '<class_dir>/<file>' under the split: no absolute path, '..' or deeper folder.

    Manifest rows are data a user may edit: a row naming '/etc/x' or '../../x' must never make
    a resume read, and above all delete, a file outside the dataset.
    """
    parts = name.split("/")
    return len(parts) == 2 and all(p not in ("", ".", "..") and "\\" not in p for p in parts)


def _is_image(path: Path, width: int, height: int) -> bool:
    try:
        with Image.open(path) as img:
            img.load()
            return img.size == (width, height)
    except (OSError, SyntaxError):
        return False


def make_row(
    item: PlannedImage, config: GenerationConfig, model: ModelInfo, sha: str, created: datetime
) -> ManifestRow:
    """The manifest row of a finished image: everything needed to regenerate it."""
    return ManifestRow(
        file_name=item.file_name,
        label=item.label,
        class_dir=item.class_dir,
        index=item.index,
        prompt=item.prompt,
        negative_prompt=config.negative_prompt,
        seed=item.seed,
        model=model.model,
        model_revision=model.revision,
        scheduler=model.scheduler,
        steps=config.steps,
        guidance_scale=config.guidance_scale,
        width=config.width,
        height=config.height,
        dtype=model.dtype,
        device=model.device,
        sha256=sha,
        created=created.isoformat(timespec="seconds"),
    )


def _shard_items(config: GenerationConfig, shard: Shard) -> list[PlannedImage]:
    return [item for batch in plan_batches(config, shard) for item in batch.items]


def scan_dataset(
    root: Path, config: GenerationConfig, *, verify: bool = True, shard: Shard = WHOLE
) -> DatasetState:
    """Valid rows and the shard's planned images missing; with `verify`, sha256 is checked.

    A shard checks the sha256 of its own files only: the other shards' files may still be
    being written.
    """
    root = Path(root)
    split = root / SPLIT
    mine = {item.file_name for item in _shard_items(config, shard)}
    rows: dict[str, ManifestRow] = {}
    for row in read_manifest(manifest_path(root)):
        path = split / row.file_name
        if not _is_dataset_file_name(row.file_name):
            continue  # an edited row pointing outside its class folder is never followed
        check = verify and (shard.whole or row.file_name in mine)
        if path.is_file() and (not check or sha256_file(path) == row.sha256):
            rows[row.file_name] = row
        else:
            rows.pop(row.file_name, None)
    plan = plan_images(config)
    missing = tuple(p for p in plan if p.file_name in mine and p.file_name not in rows)
    counts = Counter(rows[p.file_name].label for p in plan if p.file_name in rows)
    planned_rows = [rows[p.file_name] for p in plan if p.file_name in rows]
    return DatasetState(
        root=root,
        rows=rows,
        missing=missing,
        counts={c.name: counts.get(c.name, 0) for c in config.classes},
        digest=dataset_digest(planned_rows),
    )


def _rewrite_manifest(root: Path, rows: list[ManifestRow]) -> None:
    payload = "".join(r.to_json() + "\n" for r in rows).encode("utf-8")
    atomic_write_bytes(manifest_path(root), payload)


def _remove_shard_temps(split: Path, dirs: list[str], names: set[str]) -> int:
    """Delete the temp files a crashed writer left for the shard's own images."""
    temps = [
        tmp
        for d in dirs
        for tmp in (split / d).glob(f".*{TEMP_MARKER}*")
        if f"{d}/{tmp.name[1:].split(TEMP_MARKER)[0]}" in names
    ]
    for tmp in temps:
        tmp.unlink(missing_ok=True)
    return len(temps)


def _adopt_orphans(root, config, model, state) -> list[ManifestRow]:
    """Rows for complete images renamed but never counted (a crash before the append)."""
    split = Path(root) / SPLIT
    adopted = []
    for item in state.missing:
        path = split / item.file_name
        if path.is_file() and _is_image(path, config.width, config.height):
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            adopted.append(make_row(item, config, model, sha256_file(path), mtime))
        elif path.is_file():
            path.unlink()
    return adopted


def prepare_output(
    root: Path, config: GenerationConfig, model: ModelInfo | None = None, *, shard: Shard = WHOLE
) -> DatasetState:
    """Make `root` consistent before generating: the resume step, run under the dataset lock.

    1. Create the class folders.
    2. Crash leftovers: the whole dataset cuts a torn manifest tail and deletes every temp file;
       a shard deletes its own images' temp files only.
    3. Corrupt files: a file whose manifest row no longer matches it is deleted (regenerated).
       The whole dataset also drops rows that no longer describe a file.
    4. The whole dataset adopts complete images that were renamed but never counted (`model`
       describes them); a shard simply regenerates them, to the same bytes.
    """
    root = Path(root)
    split = root / SPLIT
    # 1. Folders
    dirs = validate_class_names([c.name for c in config.classes])
    for d in dirs:
        (split / d).mkdir(parents=True, exist_ok=True)
    mine = {item.file_name for item in _shard_items(config, shard)}
    # 2. Crash leftovers
    if shard.whole:
        repairs = {
            "torn_manifest_bytes": repair_manifest(manifest_path(root)),
            "temp_files_removed": len(remove_stray_temps(root)),  # dataset.json too
        }
    else:
        repairs = {"temp_files_removed": _remove_shard_temps(split, dirs, mine)}
    # 3. Rows that no longer describe their file
    all_rows = read_manifest(manifest_path(root))
    state = scan_dataset(root, config, shard=shard)
    stale = [r for r in all_rows if state.rows.get(r.file_name) != r]
    if not shard.whole:
        stale = [r for r in stale if r.file_name in mine]
    corrupt = {
        r.file_name
        for r in stale
        if r.file_name not in state.rows
        and _is_dataset_file_name(r.file_name)
        and (split / r.file_name).is_file()
    }
    for name in corrupt:
        (split / name).unlink()  # its sha256 no longer matches: regenerate it
    if not shard.whole:
        repairs["corrupt_files_removed"] = len(corrupt)
        return replace(state, repairs=repairs)
    # 4. Orphans: renamed (so complete) but not in the manifest
    if model is None:
        raise TypeError("prepare_output needs `model` for the whole dataset (orphan adoption)")
    adopted = _adopt_orphans(root, config, model, state)
    if stale or adopted:
        _rewrite_manifest(root, list(state.rows.values()) + adopted)
    repairs |= {"stale_rows_dropped": len(stale), "orphans_adopted": len(adopted)}
    state = scan_dataset(root, config, verify=False)
    return replace(state, repairs=repairs)


def plan_generation(
    root: Path, config: GenerationConfig, model: ModelInfo, shard: Shard = WHOLE
) -> GenerationPlan:
    """Repair `root` and plan the shard's fixed batches, marking those with images missing."""
    state = prepare_output(root, config, model, shard=shard)
    missing = {item.file_name for item in state.missing}
    batches = plan_batches(config, shard)
    incomplete = frozenset(
        b.number for b in batches if any(i.file_name in missing for i in b.items)
    )
    total = sum(len(b.items) for b in batches)
    return GenerationPlan(str(root), batches, incomplete, len(missing), total, state.repairs)


def verify_dataset(
    root: Path, config: GenerationConfig, shard: Shard = WHOLE
) -> tuple[DatasetRef, tuple[PlannedImage, ...]]:
    """(the dataset so far, the shard's images still missing); `dataset.json` once complete.

    A shard sha256-checks its own files now and the whole dataset only once it looks complete
    (before that the other shards are still writing).
    """
    root = Path(root)
    mine = scan_dataset(root, config, shard=shard)
    whole = mine
    if not shard.whole:
        whole = scan_dataset(root, config, verify=False)
        if not whole.missing:
            whole = scan_dataset(root, config)
    if not whole.missing:
        write_summary(root, config, whole)
    ref = DatasetRef(str(root), whole.digest, whole.counts, sum(whole.counts.values()))
    return ref, mine.missing


def write_summary(root: Path, config: GenerationConfig, state: DatasetState) -> Path:
    """`<root>/dataset.json`: the config, counts and content digest of a finished dataset."""
    summary = {
        "config": config.model_dump(mode="json"),
        "counts": state.counts,
        "digest": state.digest,
        "images": sum(state.counts.values()),
        "manifest": manifest_path(root).relative_to(root).as_posix(),
    }
    path = Path(root) / "dataset.json"
    atomic_write_bytes(path, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    return path
