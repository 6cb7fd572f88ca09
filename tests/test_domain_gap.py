"""Domain gap: Fréchet distance and KID against closed forms, and classifier features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.evaluation.domain_gap import (
    classifier_features,
    frechet_distance,
    kernel_inception_distance,
)
from synth.training.models import StudyCNN, build_model


def _gaussian(seed, n, mean, std):
    rng = np.random.default_rng(seed)
    return np.asarray(mean) + np.asarray(std) * rng.normal(size=(n, len(mean)))


def test_frechet_distance_of_identical_sets_is_zero():
    x = _gaussian(0, 300, [0, 1, 2], [1, 2, 3])
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_shifted_copy_is_the_squared_shift():
    # Same covariance, so the trace term vanishes and FD = |shift|^2 exactly.
    x = _gaussian(1, 200, [0, 0, 0, 0], [1, 2, 0.5, 1])
    shift = np.array([0.5, -1.0, 2.0, 0.0])
    assert frechet_distance(x, x + shift) == pytest.approx(shift @ shift, rel=1e-6)


def test_frechet_distance_matches_the_diagonal_gaussian_closed_form():
    # FD(N(ma, diag sa^2), N(mb, diag sb^2)) = |ma - mb|^2 + sum (sa - sb)^2
    ma, sa = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 0.5, 1.0])
    mb, sb = np.array([0.5, 1.0, 1.0, 3.0]), np.array([1.0, 1.0, 0.5, 3.0])
    expected = (ma - mb) @ (ma - mb) + (sa - sb) @ (sa - sb)
    fd = frechet_distance(_gaussian(2, 20_000, ma, sa), _gaussian(3, 20_000, mb, sb))
    assert fd == pytest.approx(expected, rel=0.03)


def test_frechet_distance_grows_with_the_mean_shift():
    x = _gaussian(4, 500, np.zeros(8), np.ones(8))
    y = _gaussian(5, 500, np.zeros(8), np.ones(8))
    distances = [frechet_distance(x, y + s) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances)
    assert distances[0] < 0.2 < distances[-1] - 30  # 8 dims x 2^2 = 32 from the shift


def test_frechet_distance_handles_fewer_images_than_dimensions():
    x, y = _gaussian(6, 5, np.zeros(20), np.ones(20)), _gaussian(7, 5, np.zeros(20), np.ones(20))
    fd = frechet_distance(x, y)
    assert np.isfinite(fd) and fd > 0


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    same, shifted = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
        same.append(kernel_inception_distance(a, b, subsets=5, subset_size=100, seed=seed).mean)
        shifted.append(kernel_inception_distance(a, b + 0.3, subsets=5, seed=seed).mean)
    # The biased estimator (diagonals kept) averages about 0.15 here; the unbiased one about 0.
    assert abs(np.mean(same)) < 0.02
    assert np.mean(shifted) > 0.2


def test_kid_reports_subsets_and_caps_the_subset_size():
    a, b = _gaussian(8, 40, np.zeros(4), np.ones(4)), _gaussian(9, 30, np.zeros(4), np.ones(4))
    kid = kernel_inception_distance(a, b, subsets=7, subset_size=1000, seed=1)
    assert (kid.subsets, kid.subset_size) == (7, 30)
    assert kid.std >= 0
    assert kid == kernel_inception_distance(a, b, subsets=7, subset_size=1000, seed=1)


def _images(n, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)


def test_classifier_features_are_the_study_cnn_penultimate_layer_in_eval_mode():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = StudyCNN(n_classes=3, size=32)
    model.train()
    images = _images(5)
    feats = classifier_features(model, images, batch_size=2)
    assert feats.shape == (5, 128) and feats.dtype == np.float32
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        model.eval()
        x = (images.float() / 255 - 0.5) / 0.5
        expected = model.classifier[:-1](model.features(x)).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    assert not model.classifier[-1]._forward_hooks  # the hook is gone


def test_classifier_features_of_resnet18_are_512_wide():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("resnet18", n_classes=3, size=32)
    assert classifier_features(model, _images(2)).shape == (2, 512)


def test_classifier_features_rejects_float_images():
    with pytest.raises(ValueError, match="images_uint8"):
        classifier_features(StudyCNN(3, 32), torch.zeros(2, 3, 32, 32))


def test_distances_reject_mismatched_dimensions():
    with pytest.raises(ValueError, match="dim"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 3)), subset_size=1)
