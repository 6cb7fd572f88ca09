"""Leakage audit: synthetic images that look like copies of real test images.

A text-to-image model may reproduce images it was trained on, and a test photo from the web may
be among them; a synthetic copy of a test image would inflate test accuracy. Each synthetic image
gets its nearest real-test neighbour by feature distance and by perceptual-hash distance, and a
pair is suspect when either is closer than its threshold.

The feature distance is relative: divided by the test set's own spacing (the median distance from
a test image to its nearest other test image). A classifier pulls same-class photos together, so
a fixed cosine cannot tell a copy from another photo of the class: on data/fruits, 135 of 220
real-train photos lie within cosine 0.95 of some test photo (docs/STATISTICS.md section 7),
while in relative distance the closest is at 0.18 and re-encoded copies at most 0.06.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from synth.data import image_hash  # the project's one pHash, shared with the real-data import

__all__ = [
    "DISTANCE_THRESHOLD",
    "HASH_THRESHOLD",
    "LeakageAudit",
    "Neighbour",
    "SuspectPair",
    "audit_leakage",
    "hamming",
    "neighbour_spacing",
    "perceptual_hash",
]


# Relative feature distance at or below which a pair is suspect. Calibrated on data/fruits
# (bench/bench_leakage_calibration.py, 3 seeds): re-encoded copies of test photos lie at <= 0.06,
# the nearest different real photo at >= 0.18; blurred or brightened copies spread to ~1 and are
# caught by the hash instead.
DISTANCE_THRESHOLD = 0.1
HASH_THRESHOLD = 6  # bits of 64: re-encoding and mild noise change a few, other photos ~32


@dataclass(frozen=True)
class Neighbour:
    """The real-test images closest to one synthetic image, by feature distance and by hash."""

    synthetic_index: int
    test_index: int  # nearest by feature distance
    distance: float  # relative: over the test set's spacing (1 ~ a typical neighbouring photo)
    hash_distance: int  # between the synthetic image and `test_index`
    hash_index: int  # nearest by perceptual hash
    hash_min: int


@dataclass(frozen=True)
class SuspectPair:
    """A synthetic image that may copy a test image, and which threshold it crossed."""

    synthetic_index: int
    test_index: int
    distance: float
    hash_distance: int
    reason: str  # 'feature', 'hash' or 'feature and hash'


@dataclass(frozen=True)
class LeakageAudit:
    """Nearest neighbours of every synthetic image and the suspect pairs among them."""

    neighbours: tuple[Neighbour, ...]
    suspects: tuple[SuspectPair, ...]
    distance_threshold: float
    hash_threshold: int
    spacing: float  # median nearest-neighbour distance among the test images' features

    @property
    def n_suspect_images(self) -> int:
        """Synthetic images with at least one suspect pair."""
        return len({pair.synthetic_index for pair in self.suspects})


def perceptual_hash(image_uint8_chw) -> int:
    """64-bit DCT perceptual hash (pHash) of one image: `synth.data.image_hash.perceptual_hash`.

    Grayscale (PIL's BT.601 'L'), 32 x 32 (Lanczos), 2-D DCT-II; each of the lowest 8 x 8
    frequencies sets its bit when above their median (bit 63 is the DC coefficient).

    Args:
        image_uint8_chw: uint8 array or CPU tensor 3 x H x W.

    Returns:
        The hash as a non-negative int below 2**64.
    """
    image = np.asarray(image_uint8_chw)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(
            f"`image_uint8_chw` must be uint8 3 x H x W, got {image.dtype} {image.shape}"
        )
    rgb = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB")
    return image_hash.perceptual_hash(rgb)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    for name, value in (("a", a), ("b", b)):
        if not 0 <= value < 2**64:
            raise ValueError(f"`{name}` must be a 64-bit hash in [0, 2**64), got {value}")
    return (a ^ b).bit_count()


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances, len(a) x len(b)."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))  # rounding can dip a few ulps below zero


def neighbour_spacing(test_feats, *, chunk_size: int = 1024) -> float:
    """Median distance from a test image's features to its nearest other test image's.

    The scale of "close" in this feature space for this test set: same-class photos sit at
    about 1 on it, near-copies far below.
    """
    test = np.asarray(test_feats, np.float64)
    if test.ndim != 2 or len(test) < 2:
        raise ValueError(f"`test_feats` must be n x dim with n >= 2, got shape {test.shape}")
    nearest = []
    for start in range(0, len(test), chunk_size):
        block = _distances(test[start : start + chunk_size], test)
        block[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        nearest.append(block.min(axis=1))
    return float(np.median(np.concatenate(nearest)))


def _hashes(images, name: str) -> np.ndarray:
    if len(images) == 0:
        raise ValueError(f"`{name}` is empty")
    return np.array([perceptual_hash(np.asarray(img)) for img in images], dtype=np.uint64)


def _check_features(syn_feats, test_feats, n_syn: int, n_test: int):
    syn, test = np.asarray(syn_feats, np.float64), np.asarray(test_feats, np.float64)
    if syn.ndim != 2 or len(syn) != n_syn:
        raise ValueError(f"`syn_feats` must be {n_syn} x dim, got shape {syn.shape}")
    if test.ndim != 2 or len(test) != n_test or test.shape[1] != syn.shape[1]:
        raise ValueError(f"`test_feats` must be {n_test} x {syn.shape[1]}, got {test.shape}")
    return syn, test


def _suspects(i: int, feat_row, hash_row, distance_threshold: float, hash_threshold: int):
    """Suspect pairs of synthetic image i: its feature-nearest and hash-nearest test images."""
    pairs = []
    for j in sorted({int(feat_row.argmin()), int(hash_row.argmin())}):
        distance, bits = float(feat_row[j]), int(hash_row[j])
        checks = (("feature", distance <= distance_threshold), ("hash", bits <= hash_threshold))
        hits = [name for name, hit in checks if hit]
        if hits:
            pairs.append(SuspectPair(i, j, distance, bits, " and ".join(hits)))
    return pairs


def audit_leakage(
    syn_images,
    syn_feats,
    test_images,
    test_feats,
    *,
    distance_threshold: float = DISTANCE_THRESHOLD,
    hash_threshold: int = HASH_THRESHOLD,
    chunk_size: int = 1024,
) -> LeakageAudit:
    """Nearest real-test neighbour of every synthetic image, and the suspect pairs.

    Args:
        syn_images: Synthetic images, uint8 N_s x 3 x H x W (array or tensor).
        syn_feats: Their features, N_s x dim (e.g. `domain_gap.classifier_features`).
        test_images: Real test images, uint8 N_t x 3 x H x W, N_t >= 2.
        test_feats: Their features, N_t x dim, from the same model.
        distance_threshold: A pair whose feature distance over `neighbour_spacing` is <= this is
            suspect, >= 0.
        hash_threshold: A pair whose hashes differ in <= this many of 64 bits is suspect.
        chunk_size: Synthetic images per distance block; bounds memory (chunk x N_t floats).

    Returns:
        The audit; pairs are sorted by synthetic index.
    """
    if not distance_threshold >= 0:
        raise ValueError(f"`distance_threshold` must be >= 0, got {distance_threshold}")
    if not 0 <= hash_threshold <= 64:
        raise ValueError(f"`hash_threshold` must be in [0, 64] bits, got {hash_threshold}")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1, got {chunk_size}")
    syn_hash, test_hash = _hashes(syn_images, "syn_images"), _hashes(test_images, "test_images")
    syn, test = _check_features(syn_feats, test_feats, len(syn_hash), len(test_hash))
    spacing = neighbour_spacing(test, chunk_size=chunk_size)
    # A test set of exact duplicates has spacing 0: then only an exact feature match is close.
    scale = spacing if spacing > 0 else np.finfo(np.float64).tiny
    neighbours, suspects = [], []
    for start in range(0, len(syn), chunk_size):
        feats = _distances(syn[start : start + chunk_size], test) / scale
        hashes = np.bitwise_count(syn_hash[start : start + chunk_size, None] ^ test_hash[None, :])
        for row, (feat_row, hash_row) in enumerate(zip(feats, hashes, strict=True)):
            i, j, k = start + row, int(feat_row.argmin()), int(hash_row.argmin())
            neighbours.append(
                Neighbour(i, j, float(feat_row[j]), int(hash_row[j]), k, int(hash_row[k]))
            )
            suspects += _suspects(i, feat_row, hash_row, distance_threshold, hash_threshold)
    return LeakageAudit(
        tuple(neighbours), tuple(suspects), distance_threshold, hash_threshold, spacing
    )
