"""Crash-safe file writes: an image or a record exists only once it is complete."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Protocol

from PIL import Image

from synth import faults

__all__ = [
    "TEMP_MARKER",
    "FileRef",
    "atomic_write_bytes",
    "content_key",
    "encode_png",
    "is_valid",
    "remove_stray_temps",
    "sha256_file",
]

TEMP_MARKER = ".tmp-"  # temp files are ".<name>.tmp-<pid>" beside their target


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of `image`, deterministic for the same pixels (no timestamps in PNG)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> str:
    """Write `data` to `path` via temp file + fsync + rename; returns its sha256 hex digest.

    A failed write (disk full, read-only folder) removes its temp file and raises an `OSError`
    that names the file: a bare "No space left on device" from write() would name none.
    """
    tmp = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}")
    try:
        faults.maybe_enospc()
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        faults.crash_point("before-rename")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if exc.filename is None:
            exc.filename = str(path)
        raise
    _fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remove_stray_temps(root: Path) -> list[Path]:
    """Delete temp files left by a crashed writer under `root`; returns what was removed."""
    removed = []
    for tmp in root.rglob(f".*{TEMP_MARKER}*"):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    return removed


class FileRef(Protocol):
    """What tasks pass around for a written file: its path and the sha256 it was written with."""

    path: str
    digest: str


def is_valid(ref: FileRef) -> bool:
    """True while the file `ref` points at exists with the digest recorded when it was written."""
    path = Path(ref.path)
    return path.is_file() and sha256_file(path) == ref.digest


def content_key(*parts: object) -> str:
    """A short digest of `parts` (JSON-able values): names a derived file after its inputs."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
