"""`QualityConfig`: which synthetic images the quality gate keeps for training.

Three independent criteria, each recorded per image in `quality.jsonl`: the real-only
classifier's confidence in the image's own label, the CLIP image-prompt score (only when a CLIP
model is named) and near-duplicates inside the synthetic set.
"""

from __future__ import annotations

from synth.config import QualityConfig

__all__ = ["QualityConfig"]  # defined in synth.config, so parsing a config never imports torch
