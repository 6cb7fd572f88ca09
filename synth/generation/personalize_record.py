"""`personalize.json`: the record that makes a fit finished, and the digests it holds.

The record lists the output files it covers. Other files in the folder (an import report, a
lock, sample grids) are not part of the generator and change none of its digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from synth.data.real_import import RealImage
from synth.errors import InputError
from synth.storage import sha256_file

__all__ = [
    "FORMAT",
    "MANIFEST",
    "PersonalizeInputError",
    "output_digest",
    "output_files",
    "read_personalize_record",
    "split_digest",
    "verified_digest",
]

MANIFEST = "personalize.json"
FORMAT = "datasynth-personalize/1"


class PersonalizeInputError(InputError):
    """Photos, base model or output folder that `personalize` cannot use; says which and why."""


def split_digest(entries: tuple[RealImage, ...] | list[RealImage]) -> str:
    """sha256 over the sorted (label, file sha256) pairs of some photos: order and paths ignored."""
    rows = sorted(f"{e.label}\0{e.sha256}" for e in entries)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _content_sha256(path: Path) -> str:
    """sha256 of a file; a `.safetensors` header is canonicalised (keys sorted) first.

    safetensors writes its `__metadata__` in hash-map order, so the same tensors and metadata
    can give different bytes from one save to the next (seen with diffusers' LoRA files).
    """
    if path.suffix != ".safetensors":
        return sha256_file(path)
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        try:
            header = json.loads(fh.read(size))
        except ValueError:
            return sha256_file(path)  # not a readable safetensors file: its raw bytes name it
        h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def output_files(directory: Path) -> list[str]:
    """Relative paths of the files in a freshly written output (hidden ones and the record out)."""
    directory = Path(directory)
    files = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if path.is_file() and not rel.parts[0].startswith(".") and rel.as_posix() != MANIFEST:
            files.append(rel.as_posix())
    return files


def output_digest(directory: Path, files: Iterable[str] | None = None) -> str:
    """'sha256:<hex>' over each output file's relative path and content digest.

    Args:
        directory: The output folder.
        files: The relative paths to cover (a record's `files`); default `output_files`.

    Raises:
        FileNotFoundError: A listed file is missing.
    """
    directory = Path(directory)
    h = hashlib.sha256()
    for rel in sorted(output_files(directory) if files is None else files):
        h.update(f"{rel}\0{_content_sha256(directory / rel)}\n".encode())
    return "sha256:" + h.hexdigest()


def read_personalize_record(out_dir: Path) -> dict | None:
    """The parsed `personalize.json` of a finished fit, or None when there is none."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return record if record.get("format") == FORMAT else None


def verified_digest(out_dir: Path) -> str | None:
    """The recorded digest of a finished fit after checking its files still match, else None.

    This is the digest that names the generator (LoRA or pipeline) in manifests.

    Raises:
        PersonalizeInputError: A recorded file is missing or changed since it was written.
    """
    record = read_personalize_record(out_dir)
    if record is None:
        return None
    try:
        digest = output_digest(out_dir, record["files"])
    except FileNotFoundError as exc:
        digest = f"missing {exc.filename}"
    if digest != record["digest"]:
        raise PersonalizeInputError(
            f"files in {str(out_dir)!r} changed after personalize wrote them ({MANIFEST} "
            f"digest {record['digest'][:23]}, now {digest[:23]}); delete the folder to fit again"
        )
    return digest
