"""64-bit DCT perceptual hashes and near-duplicate detection by Hamming distance.

The hash is the classic pHash (as in the `imagehash` package): grayscale, 32 x 32, 2-D DCT, the
8 x 8 lowest frequencies compared with their median. It ignores small noise, re-encoding and
colour shifts, so an image and a slightly noised copy differ in a few bits while unrelated images
differ in about 32.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["duplicate_of", "hamming_distance", "near_duplicates", "perceptual_hash"]

_SIDE = 32  # DCT input side
_LOW = 8  # 8 x 8 low frequencies -> 64 bits
_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: `D @ x` is the DCT of the column vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT perceptual hash of `image`, as an int in [0, 2**64).

    Bit 63 (the most significant) is the DC coefficient; bits follow the 8 x 8 block row by row.
    """
    gray = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    d = _dct_matrix(_SIDE)
    low = (d @ pixels @ d.T)[:_LOW, :_LOW]
    bits = (low > np.median(low)).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming_distance(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (a byte table: np.bitwise_count needs numpy 2)."""
    return _BYTE_BITS[values.view(np.uint8)].reshape(len(values), 8).sum(axis=1)


def duplicate_of(hashes: Sequence[int], threshold: int) -> list[int | None]:
    """For each hash, the index of the earlier image it nearly duplicates, or None.

    Greedy in the given order: an image is compared with the earlier images that are not
    themselves duplicates (the representatives) and points at the nearest one within
    `threshold` bits (the earliest on a tie). Order the hashes by file name to keep the first
    image by file name.

    Args:
        hashes: 64-bit perceptual hashes.
        threshold: Largest Hamming distance that counts as a near-duplicate (0: identical hash).

    Returns:
        One entry per hash: None for a representative, else a representative's index.
    """
    if not 0 <= threshold <= 64:
        raise ValueError(f"`threshold` must be in [0, 64], got {threshold}")
    values = np.array([int(h) for h in hashes], dtype=np.uint64)
    reps = np.zeros(len(values), dtype=np.uint64)
    rep_index: list[int] = []
    result: list[int | None] = []
    for i, value in enumerate(values):
        if rep_index:
            distances = _popcount(reps[: len(rep_index)] ^ value)
            nearest = int(np.argmin(distances))  # argmin takes the first of equal minima
            if distances[nearest] <= threshold:
                result.append(rep_index[nearest])
                continue
        reps[len(rep_index)] = value
        rep_index.append(i)
        result.append(None)
    return result


def near_duplicates(hashes: Sequence[int], threshold: int = 4) -> set[int]:
    """Indices of the images that nearly duplicate an earlier one (see `duplicate_of`)."""
    return {i for i, rep in enumerate(duplicate_of(hashes, threshold)) if rep is not None}
