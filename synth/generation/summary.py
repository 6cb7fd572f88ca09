"""`dataset.json`: written from a dataset's verified rows, and read back for training.

`write_summary` describes the images on disk as their rows say they were made (never the config
alone); `read_verified_rows` recomputes the planned, verified rows from the files and checks them
against the digest generation verified, so training reads exactly that one list.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from synth.config import GenerationConfig
from synth.errors import InputError
from synth.generation.manifest import (
    SPLIT,
    ManifestRow,
    dataset_digest,
    manifest_path,
    read_manifest,
)
from synth.generation.plan import planned_file_names
from synth.generation.provenance import PROVENANCE_FIELDS
from synth.storage import atomic_write_bytes, sha256_file

if TYPE_CHECKING:
    from synth.generation.dataset import DatasetState

__all__ = ["SUMMARY", "read_verified_rows", "write_summary"]

SUMMARY = "dataset.json"


def _provenance_summary(rows: tuple[ManifestRow, ...]) -> dict[str, list[dict]]:
    """Each provenance field but the per-image seed: its values, and how many images have each."""
    summary = {}
    for name in PROVENANCE_FIELDS:
        if name != "seed":
            counts = Counter(getattr(r, name) for r in rows).most_common()
            summary[name] = [{"value": value, "images": n} for value, n in counts]
    return summary


def write_summary(root: Path, config: GenerationConfig, state: DatasetState) -> Path:
    """`<root>/dataset.json`: what the verified images are, from their rows, and their digest.

    `config` planned them (each verified row matches it); `provenance` is read from the rows
    themselves, `excluded` counts the planned images recorded as excluded, by reason (e.g.
    {"nsfw": 2}), and `outside_plan` counts images on disk the plan no longer holds (a smaller
    `images_per_class`): kept, but neither counted nor trained on.
    """
    summary = {
        "config": config.model_dump(mode="json"),
        "counts": state.counts,
        "digest": state.digest,
        "images": len(state.verified),
        "manifest": manifest_path(root).relative_to(root).as_posix(),
        "provenance": _provenance_summary(state.verified),
        "excluded": dict(Counter(r.excluded for r in state.excluded)),
        "outside_plan": (
            len(state.rows) - len(state.verified) - len(state.excluded) - len(state.changed)
        ),
    }
    path = Path(root) / SUMMARY
    atomic_write_bytes(path, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    return path


def _read_summary(root: Path) -> tuple[dict, GenerationConfig]:
    path = root / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        return summary, GenerationConfig.model_validate(summary["config"])
    except FileNotFoundError:
        raise InputError(
            f"{str(path)!r} does not exist: the synthetic dataset is not complete; run "
            "`datasynth generate` on it first"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{str(path)!r} is not a dataset summary ({str(exc)[:200]}); run `datasynth "
            "generate` on the folder again to rewrite it"
        ) from None


def _describes(path: Path, row: ManifestRow | None) -> bool:
    return row is not None and path.is_file() and sha256_file(path) == row.sha256


def read_verified_rows(root: Path, digest: str | None = None) -> list[ManifestRow]:
    """The planned, verified rows of a finished dataset, read back from its files, in plan order.

    `dataset.json` names the plan; each planned file's last row must still match the file, and
    the rows' digest must equal `digest` (the one generation verified; by default the one in
    `dataset.json`). Rows outside the plan, superseded rows and excluded rows (the safety
    checker's black images) never enter.

    Raises:
        InputError: No `dataset.json`, a planned image missing or changed, or another digest.
    """
    root = Path(root)
    summary, config = _read_summary(root)
    expected = digest or summary.get("digest")
    last = {r.file_name: r for r in read_manifest(manifest_path(root))}
    names = planned_file_names(config)
    bad = [n for n in names if not _describes(root / SPLIT / n, last.get(n))]
    rows = [last[n] for n in names if n in last and not last[n].excluded]
    if bad or dataset_digest(rows) != expected:
        shown = f"{len(bad)} images, e.g. {bad[:3]}" if bad else "the digest differs"
        raise InputError(
            f"synthetic dataset {str(root)!r} changed since it was verified ({shown}); run "
            "`datasynth generate` (or `run`) on it again"
        )
    return rows
