"""Report figures as PIL images: curves, confusion, galleries, recipe comparisons, trends.

Figures are built on `matplotlib.figure.Figure` directly, never pyplot, so no global figure state
leaks between tasks running in one worker process. Each is rendered to PNG at a modest dpi so a
figure embedded as a data URI (`synth.reporting.markdown.markdown_image`) stays small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from synth.evaluation.metrics import EvalMetrics
from synth.figures import figure_to_image, text_label, to_hwc

if TYPE_CHECKING:
    from synth.evaluation.summary import RecipeSummary
    from synth.reporting.versions import TrendPoint

__all__ = [
    "class_difference_heatmap",
    "confusion_plot",
    "forest_plot",
    "misclassified_gallery",
    "pr_curves_plot",
    "recipe_bar_plot",
    "roc_curves_plot",
    "sample_grid",
    "shot_curve_plot",
    "trend_plot",
]

ANSWER_DPI = 110  # the verdict's figures lead the report: sharper than the detail's DPI 80
# One colour per verdict label, the same in every figure.
VERDICT_COLOURS = {
    "helps": "#1a9850",
    "hurts": "#d73027",
    "no detectable difference": "#777777",
    "replaces": "#2c7bb6",
    "does not replace": "#f46d43",
}


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _message(text: str) -> Image.Image:
    fig = Figure(figsize=(3.5, 0.8))
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    return figure_to_image(fig)


def _curves_plot(
    lines: list[tuple],
    axis_labels: tuple[str, str],
    title: str,
    legend: str,
    *,
    chance: bool = False,
    **style,
) -> Image.Image:
    """One-vs-rest curves on the unit square, one (x, y, label) line per class."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    for x, y, label in lines:
        ax.plot(x, y, lw=1.5, label=label, **style)
    if chance:
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlabel=axis_labels[0], ylabel=axis_labels[1], xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(title, fontsize=10)
    ax.legend(loc=legend, fontsize=8)
    return figure_to_image(fig)


def _area(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def roc_curves_plot(metrics: EvalMetrics) -> Image.Image:
    """One-vs-rest ROC curve per class, its AUC in the legend, chance diagonal dashed."""
    lines = [
        (c.fpr, c.tpr, f"{text_label(c.name)} (AUC {_area(c.auc)})") for c in metrics.roc_curves
    ]
    macro = "n/a" if metrics.roc_auc_ovr is None else f"{metrics.roc_auc_ovr:.3f}"
    axes = ("false positive rate", "true positive rate")
    return _curves_plot(
        lines, axes, f"ROC, one vs rest (macro AUC {macro})", "lower right", chance=True
    )


def pr_curves_plot(metrics: EvalMetrics) -> Image.Image:
    """Precision-recall curve per class (one vs rest), average precision in the legend."""
    lines = [
        (c.recall, c.precision, f"{text_label(c.name)} (AP {_area(c.average_precision)})")
        for c in metrics.pr_curves
    ]
    title = "Precision-recall, one vs rest"
    return _curves_plot(lines, ("recall", "precision"), title, "lower left", drawstyle="steps-post")


def confusion_plot(metrics: EvalMetrics) -> Image.Image:
    """Confusion matrix heat-map, rows true and columns predicted, counts written in cells."""
    counts = np.asarray(metrics.confusion)
    n = len(metrics.class_names)
    side = 2.2 + 0.5 * n
    fig = Figure(figsize=(side, side))
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues", vmin=0)
    names = [text_label(c) for c in metrics.class_names]
    ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(f"Confusion (n={metrics.n_samples})", fontsize=10)
    # white text on dark cells so the count stays legible
    dark = counts.max() / 2 if counts.size else 0
    for (r, c), value in np.ndenumerate(counts):
        color = "white" if value > dark else "black"
        ax.text(c, r, str(value), ha="center", va="center", color=color, fontsize=9)
    return figure_to_image(fig)


def _tile_grid(n: int, cols: int, tile_in: float, caption_in: float) -> tuple[Figure, list[Axes]]:
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * tile_in, rows * (tile_in + caption_in)), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def misclassified_gallery(
    images_uint8: torch.Tensor | np.ndarray,
    metrics: EvalMetrics,
    class_names: Sequence[str],
    limit: int = 16,
) -> Image.Image:
    """The most confident mistakes first, each captioned 'true → pred (confidence)'.

    Args:
        images_uint8: The evaluated images, uint8 N x 3 x S x S, in the order of the metrics.
        metrics: Metrics of those images (their `misclassified` indices point into them).
        class_names: Names for the class ids in captions.
        limit: At most this many images are shown.
    """
    images = to_hwc(images_uint8)
    wrong = sorted(metrics.misclassified, key=lambda m: (-m.confidence, m.index))[:limit]
    if not wrong:
        return _message("no misclassified images")
    fig, axes = _tile_grid(len(wrong), cols=min(4, len(wrong)), tile_in=1.15, caption_in=0.4)
    for ax, item in zip(axes, wrong, strict=True):
        ax.imshow(images[item.index], interpolation="nearest")
        true, pred = text_label(class_names[item.true]), text_label(class_names[item.predicted])
        # two lines: a one-line caption of two long class names overlaps its neighbours
        ax.set_title(f"{true} →\n{pred} ({item.confidence:.2f})", fontsize=7)
        _bare(ax)
    return figure_to_image(fig)


def sample_grid(images_by_title: dict[str, torch.Tensor], max_per_row: int = 8) -> Image.Image:
    """One row per title (e.g. 'real', 'synthetic'), up to `max_per_row` images each."""
    if not images_by_title:
        return _message("no images")
    rows = {title: to_hwc(imgs)[:max_per_row] for title, imgs in images_by_title.items()}
    cols = max(1, max(len(v) for v in rows.values()))
    fig = Figure(figsize=(1.6 + cols * 1.0, len(rows) * 1.05))
    grid = fig.add_gridspec(len(rows), cols, wspace=0.05, hspace=0.1)
    for r, (title, imgs) in enumerate(rows.items()):
        for c in range(cols):
            ax = fig.add_subplot(grid[r, c])
            _bare(ax)
            if c < len(imgs):
                ax.imshow(imgs[c], interpolation="nearest")
            if c == 0:
                ax.set_ylabel(text_label(title), fontsize=8, rotation=0, ha="right", va="center")
    return figure_to_image(fig)


def recipe_bar_plot(summaries: list[RecipeSummary], metric: str = "accuracy") -> Image.Image:
    """Mean `metric` per training recipe with 95% CI error bars.

    Args:
        summaries: One per recipe; a recipe whose `metric` is undefined is left out.
        metric: The metric to show, e.g. 'accuracy' or 'f1_macro'.
    """
    rows = [(s.recipe, s.metrics[metric]) for s in summaries if s.metrics.get(metric)]
    if not rows:
        return _message("no recipes")
    names = [text_label(recipe) for recipe, _ in rows]
    means = [value.mean for _, value in rows]
    # No interval (one seed) draws no error bar: a zero-height bar would read as certainty.
    cis = [value.ci or 0.0 for _, value in rows]
    fig = Figure(figsize=(1.2 + 0.9 * len(rows), 3.6))
    ax = fig.add_subplot()
    yerr = cis if any(cis) else None
    bars = ax.bar(range(len(rows)), means, yerr=yerr, capsize=4, color="#4c72b0", alpha=0.85)
    ax.bar_label(bars, labels=[f"{m:.3f}" for m in means], fontsize=7, padding=2)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    top = max(m + c for m, c in zip(means, cis, strict=True))
    ax.set_ylim(0, 1.08 if top <= 1 else top * 1.1)
    ax.set_ylabel(metric)
    spread = "one seed: no interval" if yerr is None else "mean ± 95% CI over seeds"
    ax.set_title(f"{metric} by recipe ({spread})", fontsize=10)
    return figure_to_image(fig)


def trend_plot(points: list[TrendPoint], metric: str) -> Image.Image:
    """`metric` per dataset version in order, one line per recipe, 95% CI error bars.

    Args:
        points: Oldest first (`synth.reporting.versions.trend_rows`).
        metric: The metric followed over versions (the y label).
    """
    if not points:
        return _message("no versions yet")
    versions = list(dict.fromkeys(p.version for p in points))
    x_of = {v: i for i, v in enumerate(versions)}
    lines: dict[str, list[TrendPoint]] = {}
    for point in points:
        lines.setdefault(point.recipe, []).append(point)
    fig = Figure(figsize=(max(4.0, 1.5 + 0.6 * len(versions)), 3.4))
    ax = fig.add_subplot()
    for recipe, line in lines.items():
        xs = [x_of[p.version] for p in line]
        ys = [p.value.mean for p in line]
        errs = [p.value.ci or 0.0 for p in line]  # one seed: no bar rather than a zero one
        ax.errorbar(
            xs, ys, yerr=errs if any(errs) else None, marker="o", ms=4, capsize=3,
            label=text_label(recipe),
        )  # fmt: skip
    ax.set_xticks(range(len(versions)), [text_label(v) for v in versions], rotation=30, ha="right")
    ax.set(xlabel="dataset version", ylabel=metric)
    ax.set_title(f"{metric} over dataset versions", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_to_image(fig)


def _panels(n: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, [fig.add_subplot(1, n, i + 1) for i in range(n)]


def forest_plot(
    panels: dict[str, Sequence[tuple[str, float, float, float, str]]],
    *,
    xlabel: str = "accuracy difference vs baseline",
    margin: float | None = None,
) -> Image.Image:
    """Paired differences with their intervals, one row per recipe, one panel per test set.

    Args:
        panels: Test set -> rows (recipe, difference, low, high, verdict label), top row first.
        xlabel: What the differences measure.
        margin: Non-inferiority margin, drawn at -margin (dotted) when given.
    """
    if not any(panels.values()):
        return _message("no comparisons")
    height = 1.2 + 0.38 * max(len(rows) for rows in panels.values())
    fig, axes = _panels(len(panels), 4.6, height)
    for ax, (title, rows) in zip(axes, panels.items(), strict=True):
        for y, (_, mean, low, high, label) in enumerate(reversed(rows)):
            colour = VERDICT_COLOURS.get(label, "black")
            ax.plot([low, high], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
            ax.plot(mean, y, "o", color=colour, ms=6)
        ax.axvline(0, color="black", lw=0.8)
        if margin:
            ax.axvline(-margin, color="grey", lw=0.8, ls=":")
        names = [text_label(r[0]) for r in reversed(rows)]
        ax.set_yticks(range(len(rows)), names, fontsize=8)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(text_label(title), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], color=c, marker="o", lw=2, label=k) for k, c in VERDICT_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    return figure_to_image(fig, dpi=ANSWER_DPI)


def shot_curve_plot(
    panels: dict[str, tuple[Sequence[tuple], Sequence[tuple]]], *, metric: str = "accuracy"
) -> Image.Image:
    """Accuracy against real images used: the real-only curve and the runs with synthetic images.

    Args:
        panels: Test set -> (real-only points, with-synthetic points); a point is (real images,
            mean, low, high) and a with-synthetic point ends with its synthetic image count.
        metric: The y axis.
    """
    if not any(real for real, _ in panels.values()):
        return _message("no shots results")
    fig, axes = _panels(len(panels), 4.2, 3.3)
    for ax, (title, (real, mixed)) in zip(axes, panels.items(), strict=True):
        for points, colour, label in ((real, "#4c72b0", "real only"), (mixed, "#dd8452", None)):
            if not points:
                continue
            xs, means = [p[0] for p in points], [p[1] for p in points]
            errs = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
            counts = {p[4] for p in points} if label is None else set()
            syn = f"real + {counts.pop():,} synthetic" if len(counts) == 1 else "real + synthetic"
            syn = label or syn
            ax.errorbar(xs, means, yerr=errs, marker="o", ms=5, capsize=3, color=colour, label=syn)
        ax.set_xscale("log")
        counts = sorted({p[0] for p in (*real, *mixed)})
        ax.set_xticks(counts, [f"{c:,}" for c in counts], fontsize=8)  # the counts tried
        ax.minorticks_off()
        ax.set(xlabel="real training images (log scale)", ylabel=metric)
        ax.set_title(text_label(title), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return figure_to_image(fig, dpi=ANSWER_DPI)


def class_difference_heatmap(
    panels: dict[str, tuple[list[str], list[str], np.ndarray, np.ndarray]], *, rate: str = "recall"
) -> Image.Image:
    """Per-class difference from the baseline, recipes x classes, one panel per test set.

    Args:
        panels: Test set -> (recipes, classes, differences recipes x classes with NaN where
            undefined, clear: True where the interval excludes 0, marked with *).
        rate: 'recall' or 'f1', for the title.
    """
    if not panels:
        return _message("no per-class differences")
    width = max(2.4 + 0.9 * len(p[1]) for p in panels.values())
    height = 1.4 + 0.4 * max(len(p[0]) for p in panels.values())
    fig, axes = _panels(len(panels), width, height)
    for ax, (title, (recipes, classes, values, clear)) in zip(axes, panels.items(), strict=True):
        image = ax.imshow(values, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(classes)), [text_label(c) for c in classes], fontsize=8)
        ax.set_yticks(range(len(recipes)), [text_label(r) for r in recipes], fontsize=8)
        for (r, c), value in np.ndenumerate(values):
            text = "n/a" if np.isnan(value) else f"{value:+.2f}" + ("*" if clear[r, c] else "")
            colour = "white" if not np.isnan(value) and abs(value) > 0.6 else "black"
            ax.text(c, r, text, ha="center", va="center", fontsize=8, color=colour)
        ax.set_title(f"{text_label(title)}: {rate} difference", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label=f"{rate} change (* interval excludes 0)")
    return figure_to_image(fig, dpi=ANSWER_DPI)
