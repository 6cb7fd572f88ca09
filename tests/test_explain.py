"""SHAP explanations on a tiny CNN: shapes, determinism, additivity, plotting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from synth.evaluation import Explanation, explain_images, shap_plot

SIZE = 16
NAMES = ("apple", "<script>", r"bad $\frac$ name")


def _tiny_cnn(n_classes: int = 3, size: int = SIZE) -> nn.Module:
    """Same shape of network as StudyCNN (conv-relu-pool x2, fc), small enough for CPU tests."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (size // 4) ** 2, 32),
        nn.ReLU(),
        nn.Linear(32, n_classes),
    )
    with torch.no_grad():
        model[-1].weight.mul_(20)  # random init gives ~0.01 logits; make the signal measurable
    return model


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _tiny_cnn()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    background = torch.randint(0, 256, (12, 3, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    images = torch.randint(0, 256, (4, 3, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0])
    return background, images, labels


@pytest.mark.parametrize("method", ["gradient", "deep"])
def test_explain_images_returns_float32_maps_of_image_size(model, data, method):
    background, images, labels = data
    e = explain_images(model, background, images, labels, NAMES, method=method, nsamples=32)
    assert isinstance(e, Explanation) and e.method == method
    for maps in (e.shap_true, e.shap_pred):
        assert maps.shape == (4, SIZE, SIZE) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and np.abs(maps).max() > 0
    assert e.labels == (0, 1, 2, 0) and e.background_size == 12
    assert e.logits.shape == (4, 3) and e.expected_value.shape == (3,)
    assert e.predictions == tuple(int(v) for v in e.logits.argmax(axis=1))
    assert all(0 < c <= 1 for c in e.confidences)


def test_explain_images_gradient_is_deterministic_for_a_seed(model, data):
    background, images, labels = data
    first = explain_images(model, background, images, labels, NAMES, seed=3, nsamples=16)
    again = explain_images(model, background, images, labels, NAMES, seed=3, nsamples=16)
    other = explain_images(model, background, images, labels, NAMES, seed=4, nsamples=16)
    np.testing.assert_array_equal(first.shap_true, again.shap_true)
    np.testing.assert_array_equal(first.shap_pred, again.shap_pred)
    assert not np.array_equal(first.shap_true, other.shap_true), "seed must drive the sampling"


def test_explain_images_deep_is_additive_for_true_and_predicted_class(model, data):
    background, images, labels = data
    e = explain_images(model, background, images, labels, NAMES, method="deep")
    rows = np.arange(4)
    truth, pred = np.array(e.labels), np.array(e.predictions)
    assert (truth != pred).any(), "the check below needs a class picked differently"
    # DeepLIFT/SHAP: attributions sum to the logit minus the mean background logit
    want_true = e.logits[rows, truth] - e.expected_value[truth]
    want_pred = e.logits[rows, pred] - e.expected_value[pred]
    np.testing.assert_allclose(e.shap_true.sum(axis=(1, 2)), want_true, atol=1e-4)
    np.testing.assert_allclose(e.shap_pred.sum(axis=(1, 2)), want_pred, atol=1e-4)
    assert e.additivity_gap() < 1e-4


def test_explain_images_gradient_sums_track_output_differences(model, data):
    background, images, labels = data
    e = explain_images(model, background, images, labels, NAMES, nsamples=200)
    rows = np.arange(4)
    delta = e.logits[rows, list(e.labels)] - e.expected_value[list(e.labels)]
    sums = e.shap_true.sum(axis=(1, 2))
    # expected gradients are additive only in expectation: allow Monte Carlo error
    assert np.abs(sums - delta).max() < 0.25 * np.abs(delta).max()
    assert np.corrcoef(sums, delta)[0, 1] > 0.9


def test_explain_images_leaves_global_numpy_rng_and_model_mode_alone(data):
    background, images, labels = data
    model = _tiny_cnn().train()
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    explain_images(model, background, images, labels, NAMES, seed=9, nsamples=8)
    assert np.random.rand() == expected
    assert model.training


def test_explain_images_draws_at_most_32_background_images(model):
    gen = torch.Generator().manual_seed(2)
    background = torch.randint(0, 256, (40, 3, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    images = background[:2]
    e = explain_images(model, background, images, [0, 1], NAMES, method="deep")
    assert e.background_size == 32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lime"}, "method"),
        ({"labels": [0, 1, 3, 0]}, "labels"),
        ({"labels": [0, 1]}, "labels"),
        ({"images_uint8": torch.zeros(4, 3, SIZE, SIZE)}, "images_uint8"),
        ({"class_names": ("a", "b"), "labels": [0, 1, 1, 0]}, "outputs"),
    ],
)
def test_explain_images_rejects_bad_arguments(model, data, kwargs, match):
    background, images, labels = data
    args = {
        "background_uint8": background,
        "images_uint8": images,
        "labels": labels,
        "class_names": NAMES,
        "method": "deep",
    }
    with pytest.raises(ValueError, match=match):
        explain_images(model, **{**args, **kwargs})


def test_shap_plot_returns_rgb_image_with_odd_class_names(model, data):
    background, images, labels = data
    e = explain_images(model, background, images, labels, NAMES, method="deep")
    img = shap_plot(e, images, NAMES)
    assert img.mode == "RGB"
    assert 200 <= img.width <= 1000 and 300 <= img.height <= 2000
    with pytest.raises(ValueError, match="images_uint8"):
        shap_plot(e, images[:2], NAMES)
