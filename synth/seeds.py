"""Seeds derived from names: one hash for every seed datasynth derives, stable across machines."""

from __future__ import annotations

import hashlib
import random

__all__ = ["derive_seed", "image_rng", "image_seed"]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from `parts` (joined by NUL), the same on every run, machine and process.

    63 bits keep it within `GenerationConfig.seed`'s range and torch's `manual_seed`.
    """
    text = "\x00".join(str(p) for p in parts)
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def image_seed(dataset_seed: int, class_name: str, index: int) -> int:
    """The seed of image `index` of `class_name`, whatever the batching or order of batches."""
    return derive_seed(dataset_seed, class_name, index)


def image_rng(seed: int, key: str) -> random.Random:
    """The random source of one image's preprocessing (margins, noise fill), keyed by its hash."""
    return random.Random(f"{seed}:{key}")  # string seeding is stable across processes
