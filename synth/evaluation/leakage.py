"""Leakage audit: synthetic images that look like copies of real test images.

A text-to-image model may reproduce images it was trained on, and a test photo from the web may
be among them; a synthetic copy of a test image would inflate test accuracy. Each synthetic image
gets its nearest real-test neighbour by feature cosine and by perceptual-hash distance, and a
pair is suspect when either is closer than its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.fft import dctn

__all__ = [
    "LeakageAudit",
    "Neighbour",
    "SuspectPair",
    "audit_leakage",
    "hamming",
    "perceptual_hash",
]

HASH_SIDE = 32  # pHash: grayscale image shrunk to 32 x 32 before the DCT
HASH_BLOCK = 8  # the lowest 8 x 8 frequencies give the 64 bits
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights, as PIL's 'L' conversion


@dataclass(frozen=True)
class Neighbour:
    """The real-test images closest to one synthetic image, by feature cosine and by hash."""

    synthetic_index: int
    test_index: int  # nearest by cosine
    cosine: float
    hash_distance: int  # between the synthetic image and `test_index`
    hash_index: int  # nearest by perceptual hash
    hash_min: int


@dataclass(frozen=True)
class SuspectPair:
    """A synthetic image that may copy a test image, and which threshold it crossed."""

    synthetic_index: int
    test_index: int
    cosine: float
    hash_distance: int
    reason: str  # 'cosine', 'hash' or 'cosine and hash'


@dataclass(frozen=True)
class LeakageAudit:
    """Nearest neighbours of every synthetic image and the suspect pairs among them."""

    neighbours: tuple[Neighbour, ...]
    suspects: tuple[SuspectPair, ...]
    cosine_threshold: float
    hash_threshold: int
    centered: bool

    @property
    def n_suspect_images(self) -> int:
        """Synthetic images with at least one suspect pair."""
        return len({pair.synthetic_index for pair in self.suspects})


def perceptual_hash(image_uint8_chw) -> int:
    """64-bit DCT perceptual hash (pHash) of one image.

    Grayscale (BT.601 luma), shrunk to 32 x 32 by area averaging, 2-D DCT-II; of the top-left
    8 x 8 coefficients (the lowest frequencies) each of the 63 AC ones sets its bit when above
    their median. The DC coefficient (bit 0) only measures brightness and is always 0.

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
    gray = np.tensordot(LUMA, image.astype(np.float32), axes=1).astype(np.float32)
    small = Image.fromarray(gray, mode="F").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX)
    block = dctn(np.asarray(small, dtype=np.float64), type=2, norm="ortho")
    coeffs = block[:HASH_BLOCK, :HASH_BLOCK].ravel()
    bits = coeffs > np.median(coeffs[1:])
    bits[0] = False
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    for name, value in (("a", a), ("b", b)):
        if not 0 <= value < 2**64:
            raise ValueError(f"`{name}` must be a 64-bit hash in [0, 2**64), got {value}")
    return (a ^ b).bit_count()


def _unit_rows(feats: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-12)  # an all-zero row stays zero: cosine 0 with all


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


def _suspects(i: int, cos_row, dist_row, cos_threshold: float, hash_threshold: int):
    """Suspect pairs of synthetic image i: its cosine-nearest and hash-nearest test images."""
    nearest = {int(cos_row.argmax()), int(dist_row.argmin())}
    pairs = []
    for j in sorted(nearest):
        cos, dist = float(cos_row[j]), int(dist_row[j])
        checks = (("cosine", cos >= cos_threshold), ("hash", dist <= hash_threshold))
        hits = [name for name, hit in checks if hit]
        if hits:
            pairs.append(SuspectPair(i, j, cos, dist, " and ".join(hits)))
    return pairs


def audit_leakage(
    syn_images,
    syn_feats,
    test_images,
    test_feats,
    *,
    cosine_threshold: float = 0.95,
    hash_threshold: int = 6,
    center: bool = True,
    chunk_size: int = 1024,
) -> LeakageAudit:
    """Nearest real-test neighbour of every synthetic image, and the suspect pairs.

    Args:
        syn_images: Synthetic images, uint8 N_s x 3 x H x W (array or tensor).
        syn_feats: Their features, N_s x dim (e.g. `domain_gap.classifier_features`).
        test_images: Real test images, uint8 N_t x 3 x H x W.
        test_feats: Their features, N_t x dim, from the same model.
        cosine_threshold: A pair with cosine >= this is suspect, in (-1, 1].
        hash_threshold: A pair whose hashes differ in <= this many of 64 bits is suspect.
        center: Subtract the test features' mean before the cosine. Penultimate ReLU features
            are all non-negative, so unrelated images share a large common direction and raw
            cosines crowd near 1; centring removes it.
        chunk_size: Synthetic images per similarity block; bounds memory (chunk x N_t floats).

    Returns:
        The audit; pairs are sorted by synthetic index.
    """
    if not -1 < cosine_threshold <= 1:
        raise ValueError(f"`cosine_threshold` must be in (-1, 1], got {cosine_threshold}")
    if not 0 <= hash_threshold <= 64:
        raise ValueError(f"`hash_threshold` must be in [0, 64] bits, got {hash_threshold}")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1, got {chunk_size}")
    syn_hash, test_hash = _hashes(syn_images, "syn_images"), _hashes(test_images, "test_images")
    syn, test = _check_features(syn_feats, test_feats, len(syn_hash), len(test_hash))
    if center:
        offset = test.mean(axis=0)
        syn, test = syn - offset, test - offset
    syn, test = _unit_rows(syn), _unit_rows(test)
    neighbours, suspects = [], []
    for start in range(0, len(syn), chunk_size):
        sims = syn[start : start + chunk_size] @ test.T
        dists = np.bitwise_count(syn_hash[start : start + chunk_size, None] ^ test_hash[None, :])
        for row, (cos_row, dist_row) in enumerate(zip(sims, dists, strict=True)):
            i, j, k = start + row, int(cos_row.argmax()), int(dist_row.argmin())
            neighbours.append(
                Neighbour(i, j, float(cos_row[j]), int(dist_row[j]), k, int(dist_row[k]))
            )
            suspects += _suspects(i, cos_row, dist_row, cosine_threshold, hash_threshold)
    return LeakageAudit(
        tuple(neighbours), tuple(suspects), cosine_threshold, hash_threshold, center
    )
