"""Per-image seeds: a pure function of (dataset seed, class, index), whatever the batching."""

from __future__ import annotations

import hashlib

__all__ = ["image_seed"]


def image_seed(dataset_seed: int, class_name: str, index: int) -> int:
    """A 63-bit seed for image `index` of `class_name`, stable across runs, machines and batches."""
    digest = hashlib.sha256(f"{dataset_seed}\x00{class_name}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)
