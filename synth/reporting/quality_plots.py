"""The quality gate's figure: the images it dropped, each captioned with its label and why."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from synth.data.quality_decide import QualityDecision
from synth.data.real_import import load_rgb
from synth.figures import figure_to_image, text_label

__all__ = ["dropped_grid"]

THUMB = 96  # px: large enough to see a blob of colour, small enough to embed many


def _caption(d: QualityDecision) -> str:
    # the reason codes only (the details are in quality.jsonl); confidence is always scored
    codes = sorted({r.split(":", 1)[0] for r in d.reasons})
    return f"{text_label(d.label)} ({d.confidence:.2f})\n" + "\n".join(codes)


def dropped_grid(
    split_dir: str | Path, decisions: Sequence[QualityDecision], limit: int = 16
) -> Image.Image:
    """Up to `limit` images of `decisions` in a grid, least confident first.

    Args:
        split_dir: The folder the decisions' file names are relative to (`<root>/train`).
        decisions: The images to show (dropped, or failing a criterion with the gate off).
        limit: At most this many thumbnails; all of them are in quality.jsonl.
    """
    shown = sorted(decisions, key=lambda d: (d.confidence, d.file_name))[:limit]
    if not shown:
        fig = Figure(figsize=(3.5, 0.8))
        fig.text(0.5, 0.5, "no image failed the gate", ha="center", va="center", fontsize=10)
        return figure_to_image(fig)
    cols = min(6, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(cols * 1.2, rows * 1.75), layout="constrained")
    for i, d in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        image = load_rgb(Path(split_dir) / d.file_name)
        image.thumbnail((THUMB, THUMB))
        ax.imshow(image, interpolation="nearest")
        ax.set_title(_caption(d), fontsize=6)
        ax.set_axis_off()
    return figure_to_image(fig)
