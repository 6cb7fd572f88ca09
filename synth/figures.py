"""Figure helpers shared by every stage that draws: render to PIL, safe labels, image layout."""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["DPI", "figure_to_image", "palette_image", "text_label", "to_hwc"]

DPI = 80  # ~360 px wide curves: readable in a report, a few tens of KB as PNG
_LABEL_CHARS = 24  # longer class names are cut so legends and ticks keep their layout


def figure_to_image(fig: Figure, dpi: int = DPI) -> Image.Image:
    """Render `fig` to an RGB PIL image through PNG bytes (no display, no pyplot)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches="tight")
    buf.seek(0)
    with Image.open(buf) as img:
        return img.convert("RGB")


def palette_image(image: Image.Image, colors: int = 256) -> Image.Image:
    """A palette (mode 'P') copy of a figure for embedding: about half the PNG bytes.

    Photo galleries rendered as RGB PNG run to ~100 KB; `markdown_image(palette_image(img))`
    keeps their data URIs small at no visible cost for thumbnails, curves and heat-maps.
    """
    return image.convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)


def text_label(name: str) -> str:
    """A class name safe for matplotlib text: `$` would start mathtext, long names are cut."""
    name = str(name)
    if len(name) > _LABEL_CHARS:
        name = name[: _LABEL_CHARS - 1] + "…"
    return name.replace("$", r"\$")


def to_hwc(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 N x 3 x S x S (tensor or array) -> uint8 N x S x S x 3 for `imshow`."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise ValueError(f"images must be N x 3 x S x S, got shape {arr.shape}")
    return np.ascontiguousarray(arr.transpose(0, 2, 3, 1)).astype(np.uint8, copy=False)
