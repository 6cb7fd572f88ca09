"""Shared checks of a dataset directory's integrity."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from synth.generation import manifest_path, read_manifest
from synth.storage import TEMP_MARKER, sha256_file


def file_ids(root: Path) -> dict[str, tuple[int, int]]:
    """file name -> (inode, mtime_ns) of every PNG: tells which files a rerun rewrote."""
    split = Path(root) / "train"
    return {
        p.relative_to(split).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in split.rglob("*.png")
    }


def assert_dataset_intact(root: Path, expected: dict[str, int]) -> None:
    """Exact counts, no duplicates, no temp files, no orphans, every sha256 matches its file."""
    split = Path(root) / "train"
    rows = read_manifest(manifest_path(root))
    names = [r.file_name for r in rows]
    assert len(names) == len(set(names)), "duplicate manifest rows"
    assert Counter(r.label for r in rows) == Counter(expected)
    on_disk = {p.relative_to(split).as_posix() for p in split.rglob("*.png")}
    assert on_disk == set(names), f"orphans/missing: {on_disk ^ set(names)}"
    assert not [p for p in split.rglob(f"*{TEMP_MARKER}*")], "temp files left behind"
    for row in rows:
        assert sha256_file(split / row.file_name) == row.sha256, row.file_name
