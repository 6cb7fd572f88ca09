"""Leakage audit: perceptual hashes and the nearest real-test neighbour of synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from synth.data import image_hash
from synth.evaluation.domain_gap import classifier_features
from synth.evaluation.leakage import audit_leakage, hamming, neighbour_spacing, perceptual_hash
from synth.training.models import StudyCNN


def _photos(n, seed, size=64):
    """Smooth random colour images (blobs), closer to photos than pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, 8, 8), generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    return (smooth.clamp(0, 1) * 255).round().to(torch.uint8)


def _noised(image, seed, amplitude=8):
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.integers(-amplitude, amplitude + 1, tuple(image.shape)))
    return (image.int() + noise).clamp(0, 255).to(torch.uint8)


def test_perceptual_hash_is_stable_for_the_same_image_in_any_container():
    image = _photos(1, seed=0)[0]
    value = perceptual_hash(image)
    assert 0 <= value < 2**64
    assert value == perceptual_hash(image.numpy()) == perceptual_hash(image.clone())
    # The project's one pHash: the same value as the real-data import's, from a PIL image
    rgb = Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB")
    assert value == image_hash.perceptual_hash(rgb)


def test_perceptual_hash_is_close_for_a_noised_copy_and_far_for_other_images():
    images = _photos(20, seed=1)
    base = perceptual_hash(images[0])
    assert hamming(base, perceptual_hash(_noised(images[0], seed=2))) <= 4
    others = [hamming(base, perceptual_hash(img)) for img in images[1:]]
    assert min(others) > 10


def test_hamming_counts_differing_bits_and_rejects_non_hashes():
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(2**64 - 1, 0) == 64
    with pytest.raises(ValueError, match="`b`"):
        hamming(0, 2**64)


def _features(images):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = StudyCNN(n_classes=3, size=64)
    return classifier_features(model, images)


def test_audit_finds_a_planted_copy_of_a_test_image():
    test, synthetic = _photos(30, seed=3), _photos(50, seed=4)
    synthetic[17] = _noised(test[7], seed=5)  # the model "memorised" test photo 7
    audit = audit_leakage(synthetic, _features(synthetic), test, _features(test))
    assert len(audit.neighbours) == 50
    assert [(p.synthetic_index, p.test_index) for p in audit.suspects] == [(17, 7)]
    pair = audit.suspects[0]
    assert pair.reason == "feature and hash" and pair.distance < 0.1 and pair.hash_distance <= 6
    assert audit.n_suspect_images == 1
    neighbour = audit.neighbours[17]
    assert (neighbour.test_index, neighbour.hash_index) == (7, 7)


def test_audit_is_the_same_in_any_chunk_size():
    test, synthetic = _photos(12, seed=6), _photos(25, seed=7)
    synthetic[3] = test[2]
    feats_t, feats_s = _features(test), _features(synthetic)
    whole = audit_leakage(synthetic, feats_s, test, feats_t)
    chunked = audit_leakage(synthetic, feats_s, test, feats_t, chunk_size=4)
    assert whole.suspects == chunked.suspects
    assert [n.test_index for n in whole.neighbours] == [n.test_index for n in chunked.neighbours]
    distances = [n.distance for n in whole.neighbours]
    assert np.allclose(distances, [n.distance for n in chunked.neighbours])


def test_audit_flags_by_feature_alone_when_only_features_match():
    test, synthetic = _photos(10, seed=8), _photos(10, seed=9)
    rng = np.random.default_rng(0)
    feats_t, feats_s = rng.normal(size=(10, 16)), rng.normal(size=(10, 16))
    feats_s[4] = feats_t[6]  # same features, different pixels
    audit = audit_leakage(synthetic, feats_s, test, feats_t)
    assert [(p.synthetic_index, p.test_index, p.reason) for p in audit.suspects] == [
        (4, 6, "feature")
    ]


def test_audit_checks_its_inputs():
    images = _photos(3, seed=10)
    feats = np.zeros((3, 4))
    with pytest.raises(ValueError, match="syn_feats"):
        audit_leakage(images, np.zeros((2, 4)), images, feats)
    with pytest.raises(ValueError, match="hash_threshold"):
        audit_leakage(images, feats, images, feats, hash_threshold=65)


def test_neighbour_spacing_is_the_median_nearest_distance_among_test_images():
    # Points on a line at 0, 1, 3, 7: nearest distances 1, 1, 2, 4 -> median 1.5
    feats = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert neighbour_spacing(feats) == pytest.approx(1.5)
    assert neighbour_spacing(feats, chunk_size=1) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="n >= 2"):
        neighbour_spacing(feats[:1])


def test_audit_distance_is_relative_to_the_test_spacing():
    # Scaling every feature by 1000 changes no relative distance, so no suspect either
    test, synthetic = _photos(10, seed=11), _photos(8, seed=12)
    rng = np.random.default_rng(1)
    feats_t, feats_s = rng.normal(size=(10, 8)), rng.normal(size=(8, 8))
    small = audit_leakage(synthetic, feats_s, test, feats_t)
    large = audit_leakage(synthetic, feats_s * 1000, test, feats_t * 1000)
    assert np.allclose(
        [n.distance for n in small.neighbours], [n.distance for n in large.neighbours]
    )
    assert large.spacing == pytest.approx(1000 * small.spacing)
