"""The quality gate's decisions: which synthetic images training keeps, and why.

Pure functions: `classifier_scores` (the real-only classifier's confidence in each image's own
label), `decide` (combine confidence, CLIP score and near-duplicates into one decision per image)
and `kept_rows` (the manifest rows training may use). `synth.data.quality_gate` re-exports them
beside `run_quality_gate`, which scores a dataset and writes the decisions to `quality.jsonl`.

Every criterion is judged on its own and listed in `reasons` as '<code>: <detail>'; an image is
kept when it has no reason, or always when the gate is disabled (so a report can show what the
gate would drop).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from synth.data.image_hash import duplicate_of, hamming_distance
from synth.data.quality_config import QualityConfig
from synth.evaluation.metrics import predict_proba
from synth.generation.manifest import ManifestRow

__all__ = [
    "REASON_CODES",
    "ImageScores",
    "QualityDecision",
    "UnscoredImageError",
    "classifier_scores",
    "decide",
    "kept_rows",
]

# The first word of every reason, for counting drops by cause.
REASON_CODES = ("low_confidence", "not_top_fraction", "low_clip_score", "near_duplicate")


class UnscoredImageError(ValueError):
    """Manifest rows the gate has not scored, or scored when the image had other bytes."""


@dataclass(frozen=True)
class ImageScores:
    """What the gate measured about one image, before any threshold."""

    file_name: str  # relative to the manifest, as in ManifestRow
    label: str
    sha256: str  # of the image bytes scored: a changed image no longer matches its score
    confidence: float  # the classifier's probability of `label`
    clip_score: float | None  # cosine(image, prompt) in [-1, 1]; None without a CLIP model
    phash: int  # 64-bit DCT perceptual hash


@dataclass(frozen=True)
class QualityDecision:
    """One image's scores and the gate's verdict, as recorded in `quality.jsonl`."""

    file_name: str
    label: str
    sha256: str
    confidence: float
    clip_score: float | None
    phash: int
    duplicate_of: str | None  # file name of the earlier image this one nearly duplicates
    kept: bool
    reasons: tuple[str, ...]  # '<code>: <detail>' per failed criterion, codes in REASON_CODES
    gate_key: str  # digest of the gate config, classifier and CLIP model that decided


def classifier_scores(
    model: nn.Module, images_uint8: torch.Tensor, labels: Sequence[int] | np.ndarray
) -> np.ndarray:
    """The classifier's probability of each image's own label.

    Args:
        model: A classifier returning logits; run where its parameters are.
        images_uint8: uint8 tensor N x 3 x S x S, preprocessed as for training.
        labels: Class index of each image.

    Returns:
        float64 array of length N, each in [0, 1].

    Raises:
        ValueError: `labels` is not one index per image within the model's classes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(images_uint8),):
        raise ValueError(
            f"`labels` must hold one class index per image ({len(images_uint8)}), "
            f"got shape {labels.shape}"
        )
    proba = predict_proba(model, images_uint8)
    if labels.size and (labels.min() < 0 or labels.max() >= proba.shape[1]):
        raise ValueError(
            f"`labels` must be in [0, {proba.shape[1]}), got {labels.min()}..{labels.max()}"
        )
    return proba[np.arange(len(labels)), labels]


def _top_count(fraction: float, n: int) -> int:
    # round() first: 0.3 * 10 is 3.0000000000000004 in floats, and ceil would make it 4
    return math.ceil(round(fraction * n, 9))


def _confidence_reasons(scores: Sequence[ImageScores], config: QualityConfig) -> list[list[str]]:
    """Per image, the classifier criterion's reason (or none): threshold or top q per class."""
    reasons: list[list[str]] = [[] for _ in scores]
    if config.top_fraction is None:
        for i, s in enumerate(scores):
            if s.confidence < config.min_confidence:
                reasons[i].append(
                    f"low_confidence: {s.confidence:.4f} < min_confidence {config.min_confidence}"
                )
        return reasons
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(scores):
        by_class[s.label].append(i)
    for members in by_class.values():
        ranked = sorted(members, key=lambda i: (-scores[i].confidence, scores[i].file_name))
        keep = _top_count(config.top_fraction, len(members))
        for rank, i in enumerate(ranked[keep:], start=keep + 1):
            reasons[i].append(
                f"not_top_fraction: confidence rank {rank} of {len(members)} in class, "
                f"top_fraction {config.top_fraction} keeps {keep}"
            )
    return reasons


def decide(
    scores: Sequence[ImageScores], config: QualityConfig, *, gate_key: str = ""
) -> list[QualityDecision]:
    """Combine the three criteria into one decision per image, in file-name order.

    Args:
        scores: One entry per image; file names must be unique.
        config: Thresholds. An image whose `clip_score` is None skips the CLIP criterion.
        gate_key: Recorded in each decision (see `synth.data.quality_gate.gate_key`).

    Returns:
        Decisions sorted by file name. Near-duplicates keep the first image by file name.

    Raises:
        ValueError: A file name appears twice.
    """
    ordered = sorted(scores, key=lambda s: s.file_name)
    names = [s.file_name for s in ordered]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"`scores` lists file names more than once: {repeated[:5]}")
    reasons = _confidence_reasons(ordered, config)
    for i, s in enumerate(ordered):
        if s.clip_score is not None and s.clip_score < config.min_clip_score:
            reasons[i].append(
                f"low_clip_score: {s.clip_score:.4f} < min_clip_score {config.min_clip_score}"
            )
    duplicates: list[int | None] = [None] * len(ordered)
    if config.dedupe_threshold is not None:
        duplicates = duplicate_of([s.phash for s in ordered], config.dedupe_threshold)
    for i, rep in enumerate(duplicates):
        if rep is not None:
            bits = hamming_distance(ordered[i].phash, ordered[rep].phash)
            reasons[i].append(
                f"near_duplicate: of {names[rep]} (hash distance {bits} <= "
                f"{config.dedupe_threshold})"
            )
    return [
        QualityDecision(
            file_name=s.file_name,
            label=s.label,
            sha256=s.sha256,
            confidence=float(s.confidence),
            clip_score=None if s.clip_score is None else float(s.clip_score),
            phash=s.phash,
            duplicate_of=None if rep is None else names[rep],
            kept=not why or not config.enabled,
            reasons=tuple(why),
            gate_key=gate_key,
        )
        for s, why, rep in zip(ordered, reasons, duplicates, strict=True)
    ]


def kept_rows(
    rows: Sequence[ManifestRow],
    quality: Mapping[str, QualityDecision],
    *,
    gate_key: str | None = None,
) -> list[ManifestRow]:
    """The rows the gate kept, in their given order.

    A row counts as unscored when `quality` has no decision for its file, the decision was made
    for other image bytes (sha256 differs: the image was regenerated or edited), or `gate_key`
    is given and the decision was made by another gate. Unscored rows are an error, never
    silently kept or dropped: re-scoring needs the classifier, so the fix is to rerun the gate.

    Raises:
        UnscoredImageError: Some rows are unscored; the message names the first few.
    """
    unscored = []
    for row in rows:
        d = quality.get(row.file_name)
        if d is None or d.sha256 != row.sha256 or (gate_key is not None and d.gate_key != gate_key):
            unscored.append(row.file_name)
    if unscored:
        raise UnscoredImageError(
            f"{len(unscored)} of {len(rows)} images have no quality decision for their current "
            f"bytes{'' if gate_key is None else f' and gate {gate_key}'} (first: "
            f"{unscored[:5]}); rerun the quality gate (run_quality_gate) on this dataset"
        )
    return [row for row in rows if quality[row.file_name].kept]
