"""`metadata.jsonl`: one JSON row per finished image, appended only after the image is renamed.

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

__all__ = ["ManifestRow", "append_rows", "dataset_digest", "read_manifest", "repair_manifest"]


@dataclass(frozen=True)
class ManifestRow:
    """Everything needed to regenerate one image exactly (file_name is relative to the manifest)."""

    file_name: str
    label: str
    class_dir: str
    index: int
    prompt: str
    negative_prompt: str
    seed: int
    model: str
    model_revision: str
    scheduler: str
    steps: int
    guidance_scale: float
    width: int
    height: int
    dtype: str
    device: str
    sha256: str
    created: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)


_FIELDS = {f.name for f in dataclasses.fields(ManifestRow)}


def read_manifest(path: Path) -> list[ManifestRow]:
    """All complete rows of `path` (none if it does not exist); a torn last line is ignored."""
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # torn by a crash mid-append
            data = json.loads(line)
            rows.append(ManifestRow(**{k: v for k, v in data.items() if k in _FIELDS}))
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


def append_rows(path: Path, rows: list[ManifestRow]) -> None:
    """Append `rows` durably; an exclusive lock keeps concurrent writers' lines whole."""
    if not rows:
        return
    payload = "".join(r.to_json() + "\n" for r in rows).encode("utf-8")
    faults.maybe_enospc()
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if os.environ.get("DATASYNTH_CRASH_AT", "").startswith("mid-manifest:"):
                fh.write(payload[: len(payload) // 2])
                fh.flush()
                faults.crash_point("mid-manifest")
                fh.write(payload[len(payload) // 2 :])
            else:
                fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def dataset_digest(rows: list[ManifestRow]) -> str:
    """Digest of a dataset's content: sorted (file, sha256) pairs, blind to row order and times."""
    h = hashlib.sha256()
    for name, sha in sorted((r.file_name, r.sha256) for r in rows):
        h.update(f"{name}\x00{sha}\n".encode())
    return h.hexdigest()
