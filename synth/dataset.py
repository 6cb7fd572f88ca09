"""The on-disk synthetic dataset: what is planned, what is done, and how to bring the two together.

Layout: `<root>/train/<class_dir>/<index>.png` with `<root>/train/metadata.jsonl` beside the class
folders (torchvision `ImageFolder` and the Hugging Face `imagefolder` loader read it unchanged).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from synth.config import GenerationConfig
from synth.manifest import ManifestRow, dataset_digest, read_manifest, repair_manifest
from synth.naming import validate_class_names
from synth.pipeline import ModelInfo
from synth.seeds import image_seed
from synth.storage import atomic_write_bytes, remove_stray_temps, sha256_file

__all__ = [
    "DatasetState",
    "make_row",
    "PlannedImage",
    "manifest_path",
    "plan_images",
    "prepare_output",
    "split_batches",
    "scan_dataset",
    "write_summary",
]

SPLIT = "train"


@dataclass(frozen=True)
class PlannedImage:
    """One image the config asks for; everything but the pixels."""

    label: str
    class_dir: str
    index: int
    seed: int
    prompt: str

    @property
    def file_name(self) -> str:
        return f"{self.class_dir}/{self.index:06d}.png"


@dataclass(frozen=True)
class DatasetState:
    """What a dataset directory holds for a config: valid rows, and planned images not yet there."""

    root: Path
    rows: dict[str, ManifestRow]
    missing: tuple[PlannedImage, ...]
    counts: dict[str, int]
    digest: str
    repairs: dict[str, int] = field(default_factory=dict)


def manifest_path(root: Path) -> Path:
    return Path(root) / SPLIT / "metadata.jsonl"


def plan_images(config: GenerationConfig) -> list[PlannedImage]:
    """Every image of the dataset, class by class, in a fixed order."""
    dirs = validate_class_names([c.name for c in config.classes])
    return [
        PlannedImage(
            label=spec.name,
            class_dir=class_dir,
            index=i,
            seed=image_seed(config.seed, spec.name, i),
            prompt=config.prompt_for(spec, i),
        )
        for spec, class_dir in zip(config.classes, dirs, strict=True)
        for i in range(config.images_per_class)
    ]


def split_batches(plan: list[PlannedImage], batch_size: int) -> list[tuple[PlannedImage, ...]]:
    """Fixed batches over the whole plan, so a batch means the same images on every run."""
    return [tuple(plan[i : i + batch_size]) for i in range(0, len(plan), batch_size)]


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


def scan_dataset(root: Path, config: GenerationConfig, *, verify: bool = True) -> DatasetState:
    """Valid rows (files present; sha256 checked when `verify`) and the planned images missing."""
    root = Path(root)
    split = root / SPLIT
    rows: dict[str, ManifestRow] = {}
    for row in read_manifest(manifest_path(root)):
        path = split / row.file_name
        if not _is_dataset_file_name(row.file_name):
            continue  # an edited row pointing outside its class folder is never followed
        if path.is_file() and (not verify or sha256_file(path) == row.sha256):
            rows[row.file_name] = row
        else:
            rows.pop(row.file_name, None)
    plan = plan_images(config)
    missing = tuple(p for p in plan if p.file_name not in rows)
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


def prepare_output(root: Path, config: GenerationConfig, model: ModelInfo) -> DatasetState:
    """Make `root` consistent before generating: the resume step, run under the dataset lock.

    1. Cut a torn manifest tail and delete temp files left by a crash.
    2. Drop rows whose file is gone or whose sha256 no longer matches (and delete such files).
    3. Adopt complete images that were renamed but never counted (a crash before the append).
    """
    root = Path(root)
    split = root / SPLIT
    split.mkdir(parents=True, exist_ok=True)
    for d in validate_class_names([c.name for c in config.classes]):
        (split / d).mkdir(exist_ok=True)
    # 1. Crash leftovers
    repairs = {
        "torn_manifest_bytes": repair_manifest(manifest_path(root)),
        "temp_files_removed": len(remove_stray_temps(root)),  # dataset.json too
    }
    # 2. Rows that no longer describe a file
    all_rows = read_manifest(manifest_path(root))
    state = scan_dataset(root, config)
    stale = [r for r in all_rows if state.rows.get(r.file_name) != r]
    for row in stale:
        path = split / row.file_name
        if (
            row.file_name not in state.rows
            and _is_dataset_file_name(row.file_name)
            and path.is_file()
        ):
            path.unlink()  # its sha256 no longer matches: corrupt, regenerate it
    # 3. Orphans: renamed (so complete) but not in the manifest
    adopted = []
    for item in state.missing:
        path = split / item.file_name
        if path.is_file() and _is_image(path, config.width, config.height):
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            adopted.append(make_row(item, config, model, sha256_file(path), mtime))
        elif path.is_file():
            path.unlink()
    if stale or adopted:
        _rewrite_manifest(root, list(state.rows.values()) + adopted)
    repairs |= {"stale_rows_dropped": len(stale), "orphans_adopted": len(adopted)}
    state = scan_dataset(root, config, verify=False)
    return DatasetState(state.root, state.rows, state.missing, state.counts, state.digest, repairs)


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
