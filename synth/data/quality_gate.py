"""The quality gate: score every synthetic image, record the decisions beside the manifest.

`run_quality_gate` scores each image listed in the manifest rows with the real-only classifier
(on the image exactly as training sees it: margins cropped, letterboxed), optionally CLIP against
its prompt, and a perceptual hash for near-duplicates; then it writes `<root>/train/quality.jsonl`
atomically, one row per image. Nothing is ever deleted: training reads the decisions back with
`read_quality` and filters its rows with `kept_rows`.

The pure parts (`classifier_scores`, `decide`, `kept_rows`) live in `synth.data.quality_decide`
and are re-exported here, so callers import everything from this module.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from synth.config import PreprocessConfig
from synth.data.clip_score import LoadedClip, clip_scores, load_clip
from synth.data.image_hash import perceptual_hash
from synth.data.preprocess import crop_random_margin, letterbox
from synth.data.quality_config import QualityConfig
from synth.data.quality_decide import (
    REASON_CODES,
    ImageScores,
    QualityDecision,
    UnscoredImageError,
    classifier_scores,
    decide,
    kept_rows,
)
from synth.data.real_import import load_rgb
from synth.devices import resolve_device
from synth.generation.dataset import manifest_path, read_verified_rows
from synth.generation.manifest import ManifestRow
from synth.seeds import image_rng
from synth.storage import atomic_write_bytes, sha256_file
from synth.training.trainer import load_checkpoint

__all__ = [
    "REASON_CODES",
    "ImageScores",
    "QualityConfig",
    "QualityDecision",
    "QualityReport",
    "UnscoredImageError",
    "classifier_scores",
    "decide",
    "gate_key",
    "gate_verified_rows",
    "kept_rows",
    "quality_path",
    "read_quality",
    "run_quality_gate",
]

QUALITY_FILE = "quality.jsonl"
_GATE_VERSION = 1  # bump when scoring changes meaning: old quality.jsonl rows stop matching


@dataclass(frozen=True)
class QualityReport:
    """What one gate run wrote and decided."""

    path: str  # the quality.jsonl written
    digest: str  # sha256 of its bytes
    gate_key: str
    enabled: bool
    kept: tuple[str, ...]  # file names, sorted
    dropped: tuple[str, ...]  # file names, sorted (always empty when the gate is disabled)
    kept_per_class: dict[str, int]
    dropped_per_class: dict[str, int]
    reason_counts: dict[str, int]  # images failing each criterion, kept or not (REASON_CODES)


def quality_path(root: str | Path) -> Path:
    """`<root>/train/quality.jsonl`: beside the manifest, by construction."""
    return manifest_path(Path(root)).with_name(QUALITY_FILE)


def gate_key(
    config: QualityConfig,
    classifier_digest: str,
    preprocess_config: PreprocessConfig,
    clip_identity: str | None,
) -> str:
    """Digest of everything that decides the gate's verdicts (not the device it ran on)."""
    parts = {
        "version": _GATE_VERSION,
        "config": config.model_dump(mode="json", exclude={"device"}),
        "classifier": classifier_digest,
        "preprocess": preprocess_config.model_dump(mode="json"),
        "clip": clip_identity,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _training_view(image: Image.Image, key: str, config: PreprocessConfig) -> torch.Tensor:
    """The uint8 3 x S x S tensor training sees for a synthetic image with this key.

    Mirrors `synth.data.preprocess.build_tensor_set` for a synthetic item (same random source,
    same draws in the same order); a test checks the two agree pixel for pixel.
    """
    rng = image_rng(config.seed, key)
    cropped = crop_random_margin(image, config.synthetic_margin, rng)
    view = letterbox(cropped, config.size, config.padding, rng)
    side = config.size
    pixels = torch.frombuffer(bytearray(view.tobytes()), dtype=torch.uint8)
    return pixels.view(side, side, 3).permute(2, 0, 1)


def _check_rows(rows: Sequence[ManifestRow], split_dir: Path, class_names: Sequence[str]) -> None:
    """Fail before any scoring: repeated or unsafe file names, missing files, unknown labels."""
    repeated = sorted(n for n, c in Counter(r.file_name for r in rows).items() if c > 1)
    if repeated:
        raise ValueError(f"`rows` list file names more than once: {repeated[:5]}")
    for row in rows:
        parts = row.file_name.split("/")
        # rows are user-editable data: never read outside the dataset
        if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise ValueError(f"`rows` file name {row.file_name!r} is not '<class_dir>/<file>'")
        if not (split_dir / row.file_name).is_file():
            raise ValueError(f"image {row.file_name!r} of `rows` is missing under {split_dir}")
    unknown = sorted({r.label for r in rows} - set(class_names))
    if unknown:
        raise ValueError(
            f"`rows` have labels {unknown} that the classifier does not know; "
            f"its classes are {list(class_names)}"
        )


def _score_chunk(
    rows: Sequence[ManifestRow],
    split_dir: Path,
    model: nn.Module,
    class_names: Sequence[str],
    clip: LoadedClip | None,
    preprocess_config: PreprocessConfig,
) -> list[ImageScores]:
    """Scores of a few images: only this chunk's decoded images are in memory at once."""
    raw, views = [], []
    for row in rows:
        path = split_dir / row.file_name
        sha = sha256_file(path)
        if sha != row.sha256:
            raise ValueError(
                f"image {row.file_name!r} has sha256 {sha}, but its manifest row says "
                f"{row.sha256}; verify the dataset before running the quality gate"
            )
        image = load_rgb(path)
        raw.append(image)
        # keyed by the row's sha256, as training keys synthetic images: same margins
        views.append(_training_view(image, row.sha256, preprocess_config))
    labels = [class_names.index(r.label) for r in rows]
    confidence = classifier_scores(model, torch.stack(views), labels)
    clip_values = (
        [None] * len(rows)
        if clip is None
        else [float(v) for v in clip_scores(clip, raw, [r.prompt for r in rows])]
    )
    return [
        ImageScores(r.file_name, r.label, r.sha256, float(c), v, perceptual_hash(img))
        for r, c, v, img in zip(rows, confidence, clip_values, raw, strict=True)
    ]


def _to_json(d: QualityDecision) -> str:
    return json.dumps(
        {
            "file_name": d.file_name,
            "label": d.label,
            "sha256": d.sha256,
            "confidence": d.confidence,
            "clip_score": d.clip_score,
            "phash": f"{d.phash:016x}",
            "duplicate_of": d.duplicate_of,
            "kept": d.kept,
            "reasons": list(d.reasons),
            "gate_key": d.gate_key,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _report(
    path: Path,
    digest: str,
    key: str,
    config: QualityConfig,
    decisions: Sequence[QualityDecision],
    class_names: Sequence[str],
) -> QualityReport:
    kept = Counter(d.label for d in decisions if d.kept)
    dropped = Counter(d.label for d in decisions if not d.kept)
    # each image counts once per criterion it fails
    reasons = Counter(code for d in decisions for code in {r.split(":", 1)[0] for r in d.reasons})
    return QualityReport(
        path=str(path),
        digest=digest,
        gate_key=key,
        enabled=config.enabled,
        kept=tuple(d.file_name for d in decisions if d.kept),
        dropped=tuple(d.file_name for d in decisions if not d.kept),
        kept_per_class={c: kept.get(c, 0) for c in class_names},
        dropped_per_class={c: dropped.get(c, 0) for c in class_names},
        reason_counts={code: reasons.get(code, 0) for code in REASON_CODES},
    )


def run_quality_gate(
    root: str | Path,
    rows: Sequence[ManifestRow],
    model_checkpoint_path: str | Path,
    config: QualityConfig,
    *,
    preprocess_config: PreprocessConfig,
    batch_size: int = 64,
) -> QualityReport:
    """Score every image of `rows`, decide, and write `<root>/train/quality.jsonl` atomically.

    Args:
        root: The synthetic dataset folder (images under `<root>/train/<class_dir>/`).
        rows: The manifest rows to score (the planned, verified rows); each file's bytes must
            still match its row's sha256.
        model_checkpoint_path: The real-only classifier trained in the same run.
        config: The gate's thresholds and optional CLIP model.
        preprocess_config: The preprocessing training uses; its `size` must be the classifier's.
        batch_size: Images decoded and scored at once; bounds memory, not results.

    Returns:
        The file's path and digest, and kept / dropped file names and counts per class.

    Raises:
        ValueError: Bad rows (see `_check_rows`), a changed image, or a size mismatch.
        CheckpointError: The checkpoint cannot be loaded.
        ModelUnavailableError: `config.clip_model` cannot be loaded.
    """
    # 1. Check inputs (the checkpoint's header names the classes and size: cheap to load)
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be > 0, got {batch_size}")
    split_dir = manifest_path(Path(root)).parent
    model, info = load_checkpoint(model_checkpoint_path)
    if preprocess_config.size != info.size:
        raise ValueError(
            f"`preprocess_config.size` is {preprocess_config.size} but the classifier "
            f"{str(model_checkpoint_path)!r} was trained on {info.size} px images"
        )
    _check_rows(rows, split_dir, info.class_names)

    # 2. Load models
    model.to(resolve_device(config.device))
    clip = None if config.clip_model is None else load_clip(config.clip_model, device=config.device)
    key = gate_key(config, info.digest, preprocess_config, None if clip is None else clip.identity)

    # 3. Score, a chunk at a time
    scores: list[ImageScores] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        scores += _score_chunk(chunk, split_dir, model, info.class_names, clip, preprocess_config)

    # 4. Decide
    decisions = decide(scores, config, gate_key=key)

    # 5. Write quality.jsonl whole, then report
    path = quality_path(root)
    payload = "".join(_to_json(d) + "\n" for d in decisions).encode("utf-8")
    digest = atomic_write_bytes(path, payload)
    return _report(path, digest, key, config, decisions, info.class_names)


def gate_verified_rows(
    root: str | Path,
    digest: str,
    model_checkpoint_path: str | Path,
    config: QualityConfig,
    *,
    preprocess_config: PreprocessConfig,
) -> QualityReport:
    """`run_quality_gate` on the dataset's planned, verified rows, as training reads them.

    Raises:
        InputError: The images changed since generation verified them (`digest` differs).
    """
    rows = read_verified_rows(Path(root), digest)
    return run_quality_gate(
        root, rows, model_checkpoint_path, config, preprocess_config=preprocess_config
    )


def _from_json(data: dict) -> QualityDecision:
    return QualityDecision(
        file_name=data["file_name"],
        label=data["label"],
        sha256=data["sha256"],
        confidence=float(data["confidence"]),
        clip_score=None if data["clip_score"] is None else float(data["clip_score"]),
        phash=int(data["phash"], 16),
        duplicate_of=data["duplicate_of"],
        kept=bool(data["kept"]),
        reasons=tuple(data["reasons"]),
        gate_key=data["gate_key"],
    )


def read_quality(root: str | Path) -> dict[str, QualityDecision]:
    """The decisions in `<root>/train/quality.jsonl` by file name; empty when there is none.

    Raises:
        ValueError: A line is not a decision row (edited or damaged), naming the line.
    """
    path = quality_path(root)
    if not path.exists():
        return {}
    decisions = {}
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            try:
                decision = _from_json(json.loads(line))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ValueError(
                    f"{str(path)!r} line {number} is not a quality decision "
                    f"({type(exc).__name__}: {exc}); rerun the quality gate to rewrite it"
                ) from None
            decisions[decision.file_name] = decision
    return decisions
