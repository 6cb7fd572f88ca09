"""What a reliability campaign counts in a dataset directory: lost, duplicated, corrupt, redone."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from synth.config import GenerationConfig
from synth.generation import manifest_path, plan_images, read_manifest, scan_dataset
from synth.storage import TEMP_MARKER, sha256_file

__all__ = [
    "Audit",
    "Comparison",
    "audit",
    "compare_to_reference",
    "final_images",
    "manifest_problems",
]


def final_images(root: Path) -> dict[str, tuple[int, int]]:
    """file name -> (inode, mtime_ns) of every image at its final name (so complete)."""
    split = Path(root) / "train"
    if not split.is_dir():
        return {}
    return {
        p.relative_to(split).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in split.rglob("*.png")
    }


def manifest_problems(root: Path, *, allow_torn_tail: bool) -> list[str]:
    """Lines of `metadata.jsonl` that are not complete JSON rows (a torn tail may be allowed)."""
    path = manifest_path(root)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    problems = [f"torn tail {tail[:40]!r}"] if tail and not allow_torn_tail else []
    for number, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except ValueError:
            problems.append(f"line {number} is not JSON: {line[:60]!r}")
    return problems


@dataclass(frozen=True)
class Audit:
    """Figures of one dataset directory; every field but `counted` must be 0 after a rerun."""

    counted: int  # planned images in the manifest with their file
    lost: int  # planned images missing from the manifest or from disk
    duplicated: int  # manifest rows naming a file an earlier row already names
    corrupt: int  # rows whose file is missing or whose sha256 differs
    orphans: int  # images on disk that no manifest row names
    temp_files: int  # temp files anywhere under the dataset root
    bad_manifest_lines: int  # lines that are not JSON rows (or a torn tail)
    regenerated_twice: int  # images complete before the run that the run rewrote or deleted
    summary_stale: int  # 1 when dataset.json is missing or its digest is not the content's

    def problems(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "counted" and v}


def audit(
    root: Path,
    config: GenerationConfig,
    before: dict[str, tuple[int, int]] | None = None,
    *,
    finished: bool = True,
) -> Audit:
    """Count what is wrong with `root` for `config`.

    Args:
        root: The dataset directory.
        config: What it should hold.
        before: `final_images(root)` taken before the run being judged: those images must be
            untouched (same inode and mtime), as a resumed run may never redo finished work.
        finished: True after a run that exited normally (everything planned must be there,
            the manifest must end cleanly, dataset.json must be current); False right after a
            crash (only what is counted must be right).
    """
    root = Path(root)
    split = root / "train"
    rows = read_manifest(manifest_path(root))
    names = [r.file_name for r in rows]
    planned = {p.file_name for p in plan_images(config)}
    counted = {n for n in names if n in planned and (split / n).is_file()}
    corrupt = sum(
        1
        for r in rows
        if not (split / r.file_name).is_file() or sha256_file(split / r.file_name) != r.sha256
    )
    now = final_images(root)
    redone = sum(1 for name, ident in (before or {}).items() if now.get(name) != ident)
    summary_stale = 0
    if finished:
        summary = root / "dataset.json"
        digest = scan_dataset(root, config).digest
        if not summary.is_file() or json.loads(summary.read_text())["digest"] != digest:
            summary_stale = 1
    return Audit(
        counted=len(counted),
        lost=len(planned - counted) if finished else 0,
        duplicated=len(names) - len(set(names)),
        corrupt=corrupt,
        orphans=len(set(now) - set(names)) if finished else 0,
        temp_files=len(list(root.rglob(f"*{TEMP_MARKER}*"))) if finished else 0,
        bad_manifest_lines=len(manifest_problems(root, allow_torn_tail=not finished)),
        regenerated_twice=redone,
        summary_stale=summary_stale,
    )


@dataclass(frozen=True)
class Comparison:
    """A dataset against a fault-free reference run of the same config."""

    same_images: bool  # same file names, labels, seeds and prompts
    byte_identical: int  # images whose PNG bytes equal the reference's
    differing: int  # images whose pixels differ (by at most `max_pixel_diff`)
    max_pixel_diff: int  # largest absolute difference of one channel, out of 255


def compare_to_reference(root: Path, reference: Path) -> Comparison:
    """Compare every image of `root` with the same image of `reference`."""
    ours = {r.file_name: r for r in read_manifest(manifest_path(root))}
    theirs = {r.file_name: r for r in read_manifest(manifest_path(reference))}

    def key(r):
        return (r.label, r.seed, r.prompt, r.negative_prompt, r.steps, r.width, r.height)

    same = ours.keys() == theirs.keys() and all(key(ours[n]) == key(theirs[n]) for n in ours)
    identical, differing, worst = 0, 0, 0
    for name in sorted(ours.keys() & theirs.keys()):
        if ours[name].sha256 == theirs[name].sha256:
            identical += 1
            continue
        a = np.asarray(Image.open(Path(root) / "train" / name), dtype=np.int16)
        b = np.asarray(Image.open(Path(reference) / "train" / name), dtype=np.int16)
        differing += 1
        worst = max(worst, int(np.abs(a - b).max()) if a.shape == b.shape else 255)
    return Comparison(same, identical, differing, worst)


def label_counts(root: Path) -> dict[str, int]:
    return dict(Counter(r.label for r in read_manifest(manifest_path(root))))
