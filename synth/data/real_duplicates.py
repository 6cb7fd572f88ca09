"""Photos that are in both the real train and test splits: exact copies or near-duplicates.

A test photo that is (nearly) a training photo is not held out: its score measures memory, not
generalisation. Downloaded datasets often hold such pairs (one photo re-encoded, resized or
recoloured). They are found by 64-bit DCT perceptual hash (`synth.data.image_hash`) and reported,
never removed: the split is the user's, the report says how many test images it concerns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["DUPLICATE_BITS", "TrainTestDuplicate", "train_test_duplicates"]

# The quality gate's near-duplicate threshold: re-encodings and small edits differ in a few
# bits, unrelated photos in about 32 of the 64.
DUPLICATE_BITS = 4


class _Hashed(Protocol):
    path: str
    sha256: str
    phash: str  # 16 hex digits


@dataclass(frozen=True)
class TrainTestDuplicate:
    """A test image that is a training image, or looks like one."""

    test: str  # path of the test image
    train: str  # path of the nearest training image (the first in dataset order on a tie)
    distance: int  # differing bits of their perceptual hashes, 0..threshold
    exact: bool  # the same bytes (sha256), not only the same look


def train_test_duplicates(
    train: Sequence[_Hashed], test: Sequence[_Hashed], threshold: int = DUPLICATE_BITS
) -> tuple[TrainTestDuplicate, ...]:
    """Each test image whose file is a training file, or whose hash is within `threshold` bits
    of a training image's; in the order of `test`.

    Args:
        train: Training images (path, sha256, hex `phash`), in dataset order.
        test: Test images, likewise.
        threshold: Largest Hamming distance that counts as a near-duplicate (0: same hash).
    """
    if not 0 <= threshold <= 64:
        raise ValueError(f"`threshold` must be in [0, 64] bits, got {threshold}")
    if not train:
        return ()
    by_sha = {}
    for image in train:
        by_sha.setdefault(image.sha256, image.path)
    hashes = np.array([int(image.phash, 16) for image in train], dtype=np.uint64)
    found = []
    for image in test:
        if image.sha256 in by_sha:
            found.append(TrainTestDuplicate(image.path, by_sha[image.sha256], 0, exact=True))
            continue
        distances = np.bitwise_count(hashes ^ np.uint64(int(image.phash, 16)))
        nearest = int(np.argmin(distances))  # argmin takes the first of equal minima
        if distances[nearest] <= threshold:
            distance = int(distances[nearest])
            found.append(TrainTestDuplicate(image.path, train[nearest].path, distance, False))
    return tuple(found)
