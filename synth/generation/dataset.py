"""The on-disk synthetic dataset: what is done, and how to bring it in line with the plan.

Layout: `<root>/train/<class_dir>/<index>.png` with `<root>/train/metadata.jsonl` beside the class
folders (torchvision `ImageFolder` and the Hugging Face `imagefolder` loader read it unchanged).

Prepare, scan and verify take a `Shard`; the whole dataset is `Shard(0, 1)`. While several shards
run, the others append to the same manifest (appends are locked, see `manifest`), so a shard only
repairs its own files and never rewrites the manifest; the whole-directory repair (torn manifest,
every temp file, stale rows, orphans) belongs to an unsharded run, which holds the dataset lock
exclusively. The run that finds the whole dataset complete writes `dataset.json`.

A finished image counts only while its row matches what the config plans for it
(`provenance.changed_fields`), and only when not `excluded` (the safety checker's black image:
done, never regenerated, never counted or trained on); images made with other settings stop a
run before anything is generated (`DatasetDriftError`), or are regenerated on request
(`regenerate_changed`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from synth.config import GenerationConfig
from synth.generation.manifest import (
    SPLIT,
    ManifestRow,
    dataset_digest,
    manifest_path,
    read_manifest,
    repair_manifest,
)
from synth.generation.model_loader import ModelInfo, model_info
from synth.generation.plan import (
    WHOLE,
    GenerationPlan,
    PlannedImage,
    Shard,
    plan_batches,
    plan_images,
    split_batches,
)
from synth.generation.provenance import (
    PROVENANCE_FIELDS,
    changed_fields,
    drift_error,
    embedded_exclusion,
    embedded_provenance,
)
from synth.generation.summary import SUMMARY, read_verified_rows, write_summary
from synth.naming import validate_class_names
from synth.storage import TEMP_MARKER, atomic_write_bytes, remove_stray_temps, sha256_file

__all__ = [
    "SPLIT",
    "DatasetRef",
    "DatasetState",
    "make_row",
    "manifest_path",
    "plan_generation",
    "prepare_output",
    "read_verified_rows",
    "scan_dataset",
    "verify_dataset",
    "write_summary",
]


@dataclass(frozen=True)
class DatasetRef:
    """A synthetic dataset as `verify_dataset` found it: where, what it holds, its digest."""

    root: str
    digest: str
    counts: dict[str, int]
    images: int


@dataclass(frozen=True)
class DatasetState:
    """What a dataset directory holds for a config.

    `rows` is the last valid row of every file on disk, planned or not. `verified` holds the
    rows of the planned images done as the config plans them, in plan order: the one list that
    `counts`, `digest`, `dataset.json` and training come from. `excluded` holds the planned
    images done as planned but recorded as excluded (`ManifestRow.excluded`): done, not
    verified. `changed` pairs each planned image done with other settings with its row.
    `missing` lists the shard's planned images (all of them for the whole dataset) neither
    verified nor excluded, changed ones included.
    """

    root: Path
    rows: dict[str, ManifestRow]
    missing: tuple[PlannedImage, ...]
    counts: dict[str, int]
    digest: str
    repairs: dict[str, int] = field(default_factory=dict)
    verified: tuple[ManifestRow, ...] = ()
    changed: tuple[tuple[ManifestRow, PlannedImage], ...] = ()
    excluded: tuple[ManifestRow, ...] = ()


def _is_dataset_file_name(name: str) -> bool:
    """True for '<class_dir>/<file>' under the split: no absolute path, '..' or deeper folder.

    Manifest rows are data a user may edit: a row naming '/etc/x' or '../../x' must never make
    a resume read, and above all delete, a file outside the dataset.
    """
    parts = name.split("/")
    return len(parts) == 2 and all(p not in ("", ".", "..") and "\\" not in p for p in parts)


def make_row(
    item: PlannedImage, device: str, sha: str, created: datetime, *, excluded: str = ""
) -> ManifestRow:
    """The manifest row of a finished image: everything needed to regenerate it."""
    return ManifestRow(
        file_name=item.file_name,
        label=item.label,
        class_dir=item.class_dir,
        index=item.index,
        device=device,
        sha256=sha,
        created=created.isoformat(timespec="seconds"),
        excluded=excluded,
        **{f: getattr(item, f) for f in PROVENANCE_FIELDS},
    )


def _shard_names(plan: list[PlannedImage], batch_size: int, shard: Shard) -> set[str]:
    batches = split_batches(plan, batch_size)
    return {i.file_name for n, b in enumerate(batches) if shard.owns(n) for i in b}


def _valid_rows(root: Path, mine: set[str], *, verify: bool, whole: bool) -> dict:
    """The last row of each file, when it still describes the file (sha256 checked: `verify`)."""
    split = root / SPLIT
    rows: dict[str, ManifestRow] = {}
    for row in read_manifest(manifest_path(root)):
        path = split / row.file_name
        if not _is_dataset_file_name(row.file_name):
            continue  # an edited row pointing outside its class folder is never followed
        check = verify and (whole or row.file_name in mine)
        rows.pop(row.file_name, None)  # a later row replaces an earlier one, valid or not
        if path.is_file() and (not check or sha256_file(path) == row.sha256):
            rows[row.file_name] = row
    return rows


def _scan(root: Path, config, plan: list[PlannedImage], shard: Shard, verify: bool):
    mine = _shard_names(plan, config.batch_size, shard)
    rows = _valid_rows(root, mine, verify=verify, whole=shard.whole)
    verified, changed, excluded = [], [], []
    for item in plan:
        row = rows.get(item.file_name)
        if row is not None and changed_fields(row, item):
            changed.append((row, item))
        elif row is not None:
            (excluded if row.excluded else verified).append(row)
    done = {r.file_name for r in verified + excluded}
    counts = Counter(r.label for r in verified)
    return DatasetState(
        root=root,
        rows=rows,
        missing=tuple(p for p in plan if p.file_name in mine and p.file_name not in done),
        counts={c.name: counts.get(c.name, 0) for c in config.classes},
        digest=dataset_digest(verified),
        verified=tuple(verified),
        changed=tuple(changed),
        excluded=tuple(excluded),
    )


def scan_dataset(
    root: Path,
    config: GenerationConfig,
    *,
    verify: bool = True,
    shard: Shard = WHOLE,
    model: ModelInfo | None = None,
) -> DatasetState:
    """What `root` holds for `config` (see `DatasetState`); with `verify`, sha256 is checked.

    A shard checks the sha256 of its own files only: the other shards' files may still be
    being written. `model` is `model_info(config)`, resolved when not given.
    """
    return _scan(Path(root), config, plan_images(config, model), shard, verify)


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


def _adopt_orphans(root: Path, model: ModelInfo, state: DatasetState) -> tuple[list, int]:
    """(rows of proven orphans, how many others were deleted to be generated again).

    An orphan is a planned image renamed into place but never counted (a crash before its
    row). It is adopted only when the provenance inside the PNG is the planned image's: the
    current config is never stamped on a file made with another.
    """
    split = root / SPLIT
    adopted, removed = [], 0
    for item in state.missing:
        path = split / item.file_name
        if item.file_name in state.rows or not path.is_file():
            continue  # a changed image being regenerated keeps its file and row until then
        if embedded_provenance(path, item):
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            sha, why = sha256_file(path), embedded_exclusion(path)
            adopted.append(make_row(item, model.device, sha, mtime, excluded=why))
        else:
            path.unlink()
            removed += 1
    return adopted, removed


def _remove_corrupt(root: Path, state: DatasetState, mine: set[str] | None) -> int:
    """Delete files whose rows no longer describe them (`mine`: only these); returns how many."""
    split = root / SPLIT
    named = {
        r.file_name
        for r in read_manifest(manifest_path(root))
        if _is_dataset_file_name(r.file_name) and (mine is None or r.file_name in mine)
    }
    corrupt = [n for n in named if n not in state.rows and (split / n).is_file()]
    for name in corrupt:
        (split / name).unlink()  # its sha256 no longer matches: regenerate it
    return len(corrupt)


def prepare_output(
    root: Path,
    config: GenerationConfig,
    model: ModelInfo | None = None,
    *,
    shard: Shard = WHOLE,
    regenerate_changed: bool = False,
) -> DatasetState:
    """Make `root` consistent before generating: the resume step, run under the dataset lock.

    1. Drift: planned images finished with other settings than the config plans raise a
       `DatasetDriftError` naming each changed field, before anything on disk changes; with
       `regenerate_changed` they are planned again (each replaced, file then row, by its batch)
       and `dataset.json` is removed until the dataset is complete again.
    2. Create the class folders.
    3. Crash leftovers: the whole dataset cuts a torn manifest tail and deletes every temp file;
       a shard deletes its own images' temp files only.
    4. Corrupt files: a file whose manifest row no longer matches it is deleted (regenerated).
       The whole dataset also drops rows that no longer describe a file, and superseded rows.
    5. The whole dataset adopts an orphan (renamed, never counted) whose embedded provenance is
       the planned image's, and deletes the others; a shard regenerates its orphans.

    `model` is `model_info(config)`, resolved when not given.
    """
    root = Path(root)
    split = root / SPLIT
    model = model or model_info(config)
    plan = plan_images(config, model)
    # 1. Drift, refused before anything is touched
    state = _scan(root, config, plan, shard, verify=True)
    if state.changed and not regenerate_changed:
        raise drift_error(root, state.changed, len(state.verified))
    if state.changed:  # it would describe images about to be replaced; rewritten when complete
        (root / SUMMARY).unlink(missing_ok=True)
    # 2. Folders
    dirs = validate_class_names([c.name for c in config.classes])
    for d in dirs:
        (split / d).mkdir(parents=True, exist_ok=True)
    # 3. Crash leftovers
    if not shard.whole:
        mine = _shard_names(plan, config.batch_size, shard)
        repairs = {
            "temp_files_removed": _remove_shard_temps(split, dirs, mine),
            "corrupt_files_removed": _remove_corrupt(root, state, mine),  # 4.
            "changed_to_regenerate": len(state.changed),
        }
        return replace(state, repairs=repairs)
    repairs = {
        "torn_manifest_bytes": repair_manifest(manifest_path(root)),
        "temp_files_removed": len(remove_stray_temps(root)),  # dataset.json too
    }
    # 4. Rows and files that no longer describe each other
    _remove_corrupt(root, state, None)
    stale = len(read_manifest(manifest_path(root))) - len(state.rows)
    # 5. Orphans: renamed (so complete) but not in the manifest
    adopted, regenerated = _adopt_orphans(root, model, state)
    if stale or adopted:
        _rewrite_manifest(root, list(state.rows.values()) + adopted)
    repairs |= {
        "stale_rows_dropped": stale,
        "orphans_adopted": len(adopted),
        "orphans_regenerated": regenerated,
        "changed_to_regenerate": len(state.changed),
    }
    return replace(_scan(root, config, plan, shard, verify=False), repairs=repairs)


def plan_generation(
    root: Path,
    config: GenerationConfig,
    model: ModelInfo,
    shard: Shard = WHOLE,
    *,
    regenerate_changed: bool = False,
) -> GenerationPlan:
    """Repair `root` and plan the shard's fixed batches, marking those with images missing.

    Raises `DatasetDriftError` when finished images differ from the plan, unless
    `regenerate_changed` (see `prepare_output`).
    """
    state = prepare_output(root, config, model, shard=shard, regenerate_changed=regenerate_changed)
    missing = {item.file_name for item in state.missing}
    batches = plan_batches(config, shard, model)
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
    plan = plan_images(config)
    mine = _scan(root, config, plan, shard, verify=True)
    whole = mine
    if not shard.whole:
        whole = _scan(root, config, plan, WHOLE, verify=False)
        if not whole.missing:
            whole = _scan(root, config, plan, WHOLE, verify=True)
    if not whole.missing:
        write_summary(root, config, whole)
    ref = DatasetRef(str(root), whole.digest, whole.counts, len(whole.verified))
    return ref, mine.missing
