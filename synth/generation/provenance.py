"""What decides an image's pixels, and the one comparison of a finished image with the plan.

A planned image (`PlannedImage`) and a manifest row (`ManifestRow`) are both a `Provenance`, the
one declaration of these fields (`PROVENANCE_FIELDS` are its names, in its order); a row counts as
done only when `changed_fields(row, planned)` is empty.
`device` is left out on purpose: fp32 on a CPU and on a GPU round differently, but that is not a
different image to ask for (fp16 is, and `dtype` records it). `created` and `sha256` describe the
file, not the request.

Each PNG also carries its provenance in a `datasynth` text chunk, so a file renamed into place
whose manifest row was lost in a crash (an orphan) can be proven to be the image the plan asks
for, rather than assumed to be.

An image recorded as excluded (the safety checker's black image: the row's `excluded`) says so
in its PNG too, so an orphan of it is adopted as excluded, never as an image of its class.

img2img (`img2img.py`) adds `source_sha256` (the guiding photo's bytes) and `strength`, with the
defaults a text-to-image row implies ('' and 1.0: no photo, all noise), so older rows still read
and still match; the comparison, the drift error and the dataset digest cover them like the rest.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from synth.errors import DatasetDriftError

__all__ = [
    "PNG_KEY",
    "PROVENANCE_FIELDS",
    "Provenance",
    "changed_fields",
    "drift_error",
    "embedded_exclusion",
    "embedded_provenance",
    "png_with_provenance",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Provenance:
    """Every field that decides an image's pixels; a new one is declared here, and only here.

    The defaults are what a manifest row written before the field existed means: no LoRA, no
    context, text-to-image. Their order is the dataset digest's: reordering them changes it.
    """

    model: str
    model_revision: str  # a hub model's resolved commit sha, a local folder's content digest
    lora_digest: str = ""
    lora_scale: float = 1.0
    scheduler: str
    steps: int
    guidance_scale: float
    width: int
    height: int
    dtype: str
    prompt: str
    negative_prompt: str
    seed: int
    context: str = ""
    strategy: str = "text2img"
    source_sha256: str = ""  # img2img: the guiding photo's sha256 ('' for text-to-image)
    strength: float = 1.0  # img2img: share of the denoising redone (text-to-image: all of it)


PROVENANCE_FIELDS = tuple(f.name for f in dataclasses.fields(Provenance))
_EMBEDDED = ("file_name", "label", *PROVENANCE_FIELDS)
PNG_KEY = "datasynth"
_MISSING = object()
_SHOWN_PER_FIELD = 3  # value pairs named per field in the drift error; the rest are counted


def _get(obj: Any, name: str) -> Any:
    return obj.get(name, _MISSING) if isinstance(obj, Mapping) else getattr(obj, name, _MISSING)


def changed_fields(
    done: Any, planned: Any, fields: Sequence[str] = PROVENANCE_FIELDS
) -> tuple[str, ...]:
    """The fields in which a finished image (row or embedded record) differs from the plan."""
    return tuple(f for f in fields if _get(done, f) != _get(planned, f))


def png_with_provenance(image: Image.Image, planned: Any, *, excluded: str = "") -> bytes:
    """PNG bytes of `image` with its provenance in a text chunk (deterministic: no times), and
    its `excluded` reason when it has one (a kept image's bytes are as they always were)."""
    info = PngInfo()
    record = {f: _get(planned, f) for f in _EMBEDDED}
    if excluded:
        record["excluded"] = excluded
    info.add_text(PNG_KEY, json.dumps(record, sort_keys=True, ensure_ascii=True))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def embedded_provenance(path: Path, planned: Any) -> bool:
    """True when `path` decodes at the planned size and its text chunk is the planned image's."""
    try:
        with Image.open(path) as img:
            text = img.info.get(PNG_KEY)  # written before the pixels: no decode needed to read
            img.load()  # a chunk checksum or a truncated stream fails here
            size = img.size
        record = json.loads(text) if isinstance(text, str) else None
    except (OSError, SyntaxError, ValueError):
        return False
    if not isinstance(record, dict) or size != (_get(planned, "width"), _get(planned, "height")):
        return False
    return not changed_fields(record, planned, _EMBEDDED)


def embedded_exclusion(path: Path) -> str:
    """The `excluded` reason in the PNG's provenance chunk ('' for a kept image or none)."""
    try:
        with Image.open(path) as img:
            record = json.loads(img.info.get(PNG_KEY, "{}"))
    except (OSError, SyntaxError, ValueError):
        return ""
    return str(record.get("excluded", "")) if isinstance(record, dict) else ""


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(field: str, pairs: Counter) -> str:
    """'steps 4 → 8 (240 images)', or for several values 'prompt (80 images): a → b (40), ...'."""
    common = pairs.most_common()
    if len(common) == 1:
        (old, new), n = common[0]
        return f"{field} {old} → {new} ({n} images)"
    shown = [f"{old} → {new} ({n})" for (old, new), n in common[:_SHOWN_PER_FIELD]]
    rest = common[_SHOWN_PER_FIELD:]
    if rest:
        shown.append(f"and {len(rest)} more ({sum(n for _, n in rest)})")
    return f"{field} ({sum(pairs.values())} images): {', '.join(shown)}"


def drift_error(root: Path, changed: Sequence[tuple[Any, Any]], kept: int) -> DatasetDriftError:
    """One error naming each changed field, how many images each change affects, and the ways on.

    Args:
        root: The dataset folder.
        changed: (row on disk, planned image) of every finished image that differs from the plan.
        kept: How many finished images match the plan (kept by `--regenerate-changed`).
    """
    pairs: dict[str, Counter] = defaultdict(Counter)
    for row, planned in changed:
        for field in changed_fields(row, planned):
            pairs[field][(_shown(_get(row, field)), _shown(_get(planned, field)))] += 1
    parts = [_describe(field, pairs[field]) for field in PROVENANCE_FIELDS if field in pairs]
    n = len(changed)
    return DatasetDriftError(
        f"{n} images in {str(root)!r} were made with other settings than the config plans for "
        f"them: {'; '.join(parts)}. Generate into a new folder (a new `--out`; for `run`, "
        f"`--set out=DIR`), or rerun with `--regenerate-changed` to regenerate exactly these {n} "
        f"images and keep the other {kept}"
    )
