"""`QualityConfig`: which synthetic images the quality gate keeps for training.

Three independent criteria, each recorded per image in `quality.jsonl`: the real-only
classifier's confidence in the image's own label, the CLIP image-prompt score (only when a CLIP
model is named) and near-duplicates inside the synthetic set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["QualityConfig"]


class QualityConfig(BaseModel):
    """Thresholds of the quality gate; every field has a default and a reason."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(
        default=True,
        description="Drop images that fail a criterion. False still scores every image and "
        "records the reasons, but keeps all of them (to compare gate on and off).",
    )
    min_confidence: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        strict=True,  # a TOML `true` must not pass as 1.0
        description="Keep an image when the real-only classifier gives its own label at least "
        "this probability (0 disables). Ignored when `top_fraction` is set.",
    )
    top_fraction: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        strict=True,
        description="Instead of `min_confidence`: keep the ceil(q * n) most confident images of "
        "each class of n images (ties broken by file name). None: use `min_confidence`.",
    )
    clip_model: str | None = Field(
        default=None,
        description="Hugging Face hub id or local folder of a CLIP model scoring each image "
        "against its prompt; None disables the CLIP criterion.",
    )
    min_clip_score: float = Field(
        default=0.2,
        ge=-1.0,
        le=1.0,
        strict=True,
        description="Keep an image when the cosine similarity of its CLIP image embedding and its "
        "prompt's text embedding is at least this (raw cosine, not CLIPScore's 2.5 x).",
    )
    dedupe_threshold: int | None = Field(
        default=4,
        ge=0,
        le=64,
        strict=True,
        description="Two images whose 64-bit DCT perceptual hashes differ in at most this many "
        "bits are near-duplicates; the first by file name is kept. None disables it.",
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        default="auto", description="Where the classifier and CLIP run; 'auto' takes CUDA."
    )

    @field_validator("clip_model")
    @classmethod
    def _clip_model_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("clip_model must be a hub id, a folder, or None; got a blank string")
        return value
