"""Figures of the diagnosis: domain gap per class, nearest-neighbour distances, suspect pairs.

Built on `matplotlib.figure.Figure` (never pyplot) and rendered to PIL, as synth/reporting/plots.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from synth.evaluation.diagnosis import FeatureSpaceGap, LeakageCheck
from synth.figures import figure_to_image, text_label, to_hwc

__all__ = ["domain_gap_plot", "nearest_distance_plot", "pair_grid"]

_SYN, _YARD = "#c44e52", "#8c8c8c"  # synthetic in red, the real yardstick in neutral grey


def _message(text: str) -> Image.Image:
    fig = Figure(figsize=(3.5, 0.8))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    return figure_to_image(fig)


def domain_gap_plot(gaps: Sequence[FeatureSpaceGap]) -> Image.Image:
    """Per class, FD of real-train vs synthetic beside real-train vs real-test; a panel per space.

    Error bars are the standard deviation over the equal-count draws.
    """
    gaps = [g for g in gaps if any(c.fd_synthetic is not None for c in g.classes)]
    if not gaps:
        return _message("no class has 2 images in every set")
    fig = Figure(figsize=(0.8 + 4.4 * len(gaps), 3.6))
    for k, gap in enumerate(gaps):
        ax = fig.add_subplot(1, len(gaps), k + 1)
        rows = [c for c in gap.classes if c.fd_synthetic is not None]
        x = np.arange(len(rows))
        for offset, attr, colour, label in (
            (-0.2, "synthetic", _SYN, "real-train vs synthetic"),
            (0.2, "yardstick", _YARD, "real-train vs real-test (yardstick)"),
        ):
            means = [getattr(c, f"fd_{attr}") for c in rows]
            sds = [getattr(c, f"fd_{attr}_sd") or 0.0 for c in rows]
            ax.bar(x + offset, means, 0.4, yerr=sds, capsize=3, color=colour, label=label)
        ax.set_xticks(x, [f"{text_label(c.name)}\n(n={c.n})" for c in rows], fontsize=8)
        ax.set_ylabel("Fréchet distance", fontsize=8)
        ax.set_title(text_label(gap.space), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
        ax.margins(y=0.25)  # room for the legend above the bars
    return figure_to_image(fig)


def nearest_distance_plot(checks: Sequence[LeakageCheck]) -> Image.Image:
    """Histograms of relative distances to the nearest test image: synthetic vs real-train.

    Log scale: copies sit near 0.01, other photos near 1; real-train is the calibration (its
    photos are not copies, so any of them left of the threshold is a false alarm).
    """
    if not checks:
        return _message("no test set audited")
    fig = Figure(figsize=(0.8 + 4.4 * len(checks), 3.2))
    bins = np.geomspace(1e-3, 1e2, 41)
    for k, check in enumerate(checks):
        ax = fig.add_subplot(1, len(checks), k + 1)
        for values, colour, label in (
            (check.synthetic_distances, _SYN, f"synthetic ({len(check.synthetic_distances)})"),
            (check.train_distances, _YARD, f"real-train ({len(check.train_distances)})"),
        ):
            clipped = np.clip(values, bins[0], bins[-1])  # exact copies (0) land in the first bin
            weights = np.full(len(values), 1.0 / max(len(values), 1))
            ax.hist(clipped, bins=bins, weights=weights, histtype="step", lw=1.5, color=colour,
                    label=label)  # fmt: skip
        ax.axvline(check.distance_threshold, color="black", ls="--", lw=1, label="suspect below")
        ax.set_xscale("log")
        ax.set_xlabel(f"distance to the nearest {text_label(check.test_set)} image", fontsize=8)
        ax.set_ylabel("share of images", fontsize=8)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
    return figure_to_image(fig)


def pair_grid(pairs: Sequence[tuple[np.ndarray, np.ndarray, str]], per_row: int = 4) -> Image.Image:
    """Synthetic image beside its nearest test image, captioned; `per_row` pairs per row.

    Args:
        pairs: (synthetic uint8 3 x S x S, test uint8 3 x S x S, caption) per pair.
        per_row: Pairs per row of the grid.
    """
    if not pairs:
        return _message("no pairs")
    rows = -(-len(pairs) // per_row)
    cols = min(per_row, len(pairs))
    fig = Figure(figsize=(cols * 2.8, rows * 1.75))
    grid = fig.add_gridspec(rows, cols * 2, wspace=0.05, hspace=0.45)
    for i, (syn, test, caption) in enumerate(pairs):
        r, c = divmod(i, per_row)
        images = to_hwc(np.stack([np.asarray(syn), np.asarray(test)]))
        for j, (img, who) in enumerate(zip(images, ("synthetic", "test"), strict=True)):
            ax = fig.add_subplot(grid[r, 2 * c + j])
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(who, fontsize=7, pad=2)
            if j == 0:
                ax.set_xlabel(caption, fontsize=7, loc="left")
    return figure_to_image(fig)
