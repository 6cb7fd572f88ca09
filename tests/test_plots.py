"""Report figures: RGB images of sensible size, small PNGs, odd class names, no pyplot state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from synth import figures
from synth.evaluation import MetricSummary, RecipeSummary, compute_metrics
from synth.reporting import TrendPoint, plots
from synth.storage import encode_png

NAMES = ("apple", "<script>", r"bad $\frac$ name")
MAX_PNG_BYTES = 60_000  # data URIs in artifacts must stay small


@pytest.fixture(scope="module")
def metrics():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 8)
    logits = rng.normal(size=(24, 3)) + 0.7 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return compute_metrics(y, proba, NAMES)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """24 smooth 32 px images (a colour ramp each): photo-like PNG sizes, not noise."""
    ramp = torch.linspace(0, 255, 32).to(torch.uint8)
    base = ramp.view(1, 1, 1, 32).expand(24, 3, 32, 32).clone()
    base[:, 1] = base[:, 1].flip(-1)
    base[:, 2] = (torch.arange(24) * 10).view(24, 1, 1).to(torch.uint8)
    return base


def _check_rgb(img: Image.Image, max_bytes: int = MAX_PNG_BYTES) -> None:
    assert isinstance(img, Image.Image) and img.mode == "RGB"
    assert 80 <= img.width <= 1600 and 80 <= img.height <= 1600, img.size
    assert len(encode_png(img)) < max_bytes
    # not a blank canvas: something was drawn
    assert np.asarray(img).std() > 5


def test_roc_curves_plot_returns_small_rgb_image(metrics):
    assert metrics.misclassified, "fixture should include mistakes"
    _check_rgb(plots.roc_curves_plot(metrics))


def test_pr_curves_plot_returns_small_rgb_image(metrics):
    _check_rgb(plots.pr_curves_plot(metrics))


def test_confusion_plot_returns_small_rgb_image(metrics):
    _check_rgb(plots.confusion_plot(metrics))


def test_roc_curves_plot_handles_undefined_auc():
    m = compute_metrics([0, 0, 1, 1], np.full((4, 3), 1 / 3), ("a", "b", "never seen"))
    assert m.roc_auc_ovr is None
    _check_rgb(plots.roc_curves_plot(m))
    _check_rgb(plots.pr_curves_plot(m))


def test_misclassified_gallery_shows_at_most_limit_images(metrics, images):
    assert len(metrics.misclassified) >= 5
    full = plots.misclassified_gallery(images, metrics, NAMES, limit=16)
    one = plots.misclassified_gallery(images, metrics, NAMES, limit=1)
    _check_rgb(full, max_bytes=150_000)
    _check_rgb(one)
    assert one.width * one.height < full.width * full.height / 3


def test_misclassified_gallery_says_so_when_nothing_is_wrong(images):
    perfect = compute_metrics([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), ("a", "b"))
    img = plots.misclassified_gallery(images[:2], perfect, ("a", "b"))
    assert img.mode == "RGB" and img.height < 120


def test_sample_grid_has_one_row_per_title(images):
    one = plots.sample_grid({"real": images[:6]})
    two = plots.sample_grid({"real": images[:6], "<script>": images[6:12]})
    _check_rgb(two)
    assert two.height > 1.6 * one.height
    with pytest.raises(ValueError, match="N x 3 x S x S"):
        plots.sample_grid({"real": images[:, 0]})


def test_recipe_bar_plot_draws_means_with_ci(metrics):
    rows = [
        RecipeSummary("real", "test", 3, {"accuracy": MetricSummary(0.96, 0.02)}),
        RecipeSummary("<script>", "test", 1, {"accuracy": MetricSummary(0.61, 0.0)}),
        RecipeSummary("mix 50/50", "test", 3, {"accuracy": MetricSummary(0.9, 0.05)}),
        RecipeSummary("undefined", "test", 3, {"accuracy": None}),
    ]
    bars = plots.recipe_bar_plot(rows)
    _check_rgb(bars)
    no_bars = plots.recipe_bar_plot(rows, metric="f1_macro")  # no recipe has it: a message
    assert no_bars.mode == "RGB" and no_bars.size != bars.size


def test_trend_plot_draws_one_line_per_recipe():
    def point(version: str, recipe: str, mean: float, ci: float) -> TrendPoint:
        return TrendPoint(version, "", recipe, MetricSummary(mean, ci), 4, "ab")

    rows = [
        point("2024-01-01", "real", 0.9, 0.03),
        point("2024-01-01", "synthetic", 0.5, 0.1),
        point("2024-01-02", "real", 0.92, 0.02),
        point("2024-01-02", "synthetic", 0.55, 0.1),
    ]
    _check_rgb(plots.trend_plot(rows, "accuracy"))
    _check_rgb(plots.trend_plot([point("v1", "real", 0.7, 0.0)], "f1_macro"))


def test_palette_image_shrinks_png_of_a_gallery(metrics, images):
    gallery = plots.misclassified_gallery(images, metrics, NAMES)
    small = figures.palette_image(gallery)
    assert small.mode == "P" and small.size == gallery.size
    assert len(encode_png(small)) < len(encode_png(gallery))


def test_text_label_escapes_mathtext_and_cuts_long_names():
    assert figures.text_label("a$b$") == r"a\$b\$"
    assert len(figures.text_label("x" * 100)) == 24


def test_plots_leave_no_pyplot_figures_behind(metrics, images):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.roc_curves_plot(metrics)
    plots.confusion_plot(metrics)
    plots.misclassified_gallery(images, metrics, NAMES)
    assert plt.get_fignums() == before
