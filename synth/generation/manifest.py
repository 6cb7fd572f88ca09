"""`metadata.jsonl`: one JSON row per finished image, appended only after the image is renamed.

A file may have several rows (an image regenerated after a config change gets a new row after the
old one): readers take the last row of each file, and a whole-dataset resume compacts the file.
A crash can tear the last row; readers skip a torn tail and `repair_manifest` cuts it off before
anything is appended again, so the file stays valid JSON Lines.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from synth import faults
from synth.errors import InputError
from synth.generation.provenance import PROVENANCE_FIELDS, Provenance

__all__ = [
    "SPLIT",
    "ManifestRow",
    "append_rows",
    "dataset_digest",
    "manifest_path",
    "read_manifest",
    "repair_manifest",
    "sample_images",
]

SPLIT = "train"  # the ImageFolder split the images and their manifest live in


def manifest_path(root: Path) -> Path:
    """`<root>/train/metadata.jsonl`."""
    return Path(root) / SPLIT / "metadata.jsonl"


@dataclass(frozen=True, kw_only=True)
class ManifestRow(Provenance):
    """One finished image: its provenance, its file (`file_name` is relative to the manifest) and
    the run that made it; everything needed to regenerate it exactly."""

    file_name: str
    label: str
    class_dir: str
    index: int
    device: str
    sha256: str
    created: str
    # Why a finished image is not an image of its class ('' for a kept one): "nsfw" when the
    # pipeline's safety checker blacked it out. The outcome of the request, not provenance.
    excluded: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)


_FIELDS = {f.name for f in dataclasses.fields(ManifestRow)}
# Left out of the digest at their text-to-image values, so a text-to-image dataset keeps the
# digest it had before img2img existed (and its cached tensor files their names).
_IMG2IMG_DEFAULTS = {"source_sha256": "", "strength": 1.0}


def read_manifest(path: Path) -> list[ManifestRow]:
    """All complete rows of `path` (none if it does not exist); a torn last line is ignored.

    Raises:
        ValueError: A complete line is not a row (edited or damaged by hand), naming the line.
    """
    if not path.exists():
        return []
    rows = []
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-append
            try:
                data = json.loads(line)
                rows.append(ManifestRow(**{k: v for k, v in data.items() if k in _FIELDS}))
            except (ValueError, TypeError, AttributeError) as exc:
                raise InputError(
                    f"manifest {str(path)!r} line {number} is not a manifest row ({exc}); "
                    "move the file away to rebuild it from the images"
                ) from None
    return rows


def repair_manifest(path: Path) -> int:
    """Cut a torn last line off `path`; returns the number of bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data) - keep


def _end_of_last_row(fd: int) -> int:
    """Offset just past the last complete row; cuts a torn tail first (the caller holds the lock).

    A writer that died mid-row leaves a tail with no newline; appending after it would weld the
    next row onto it and make a line no reader can parse.
    """
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    keep = os.pread(fd, size, 0).rfind(b"\n") + 1
    os.ftruncate(fd, keep)
    return keep


def _write_all(fd: int, payload: bytes) -> None:
    half = (
        len(payload) // 2
        if os.environ.get("DATASYNTH_CRASH_AT", "").startswith("mid-manifest:")
        else 0
    )
    if half:
        os.write(fd, payload[:half])  # the test hook tears this row on purpose
        faults.crash_point("mid-manifest")
    view = memoryview(payload)[half:]
    while view:
        view = view[os.write(fd, view) :]


def append_rows(path: Path, rows: list[ManifestRow]) -> None:
    """Append `rows` durably; an exclusive lock keeps concurrent writers' lines whole.

    A failed append (disk full) is rolled back, so the file never keeps half a row, and the
    `OSError` names the manifest.
    """
    if not rows:
        return
    payload = "".join(r.to_json() + "\n" for r in rows).encode("utf-8")
    try:
        faults.maybe_enospc()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # dropped when fd is closed
            start = _end_of_last_row(fd)
            try:
                _write_all(fd, payload)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def sample_images(root: Path, labels: list[str], per_class: int) -> dict[str, list[Path]]:
    """Up to `per_class` images of each label, by file name, from the manifest of `root`: never
    an excluded one (a black image the safety checker flagged is no sample of its class)."""
    last = {r.file_name: r for r in read_manifest(manifest_path(root))}  # a later row wins
    kept = sorted((name, r.label) for name, r in last.items() if not r.excluded)
    return {
        label: [Path(root) / SPLIT / name for name, c in kept if c == label][:per_class]
        for label in labels
    }


def dataset_digest(rows: list[ManifestRow]) -> str:
    """Digest of a dataset: each image's file, sha256, label and provenance, blind to row order
    and times; so a changed LoRA, prompt or model changes it even where the bytes would not."""
    h = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r.file_name):
        provenance = [
            getattr(row, f)
            for f in PROVENANCE_FIELDS
            if f not in _IMG2IMG_DEFAULTS or getattr(row, f) != _IMG2IMG_DEFAULTS[f]
        ]
        fields = [row.file_name, row.sha256, row.label, *provenance]
        h.update(json.dumps(fields, ensure_ascii=True).encode() + b"\n")
    return h.hexdigest()
