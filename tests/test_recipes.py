"""recipes: exact, stratified, seeded selections; confidence intervals; training."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from synth.config import RecipeConfig, TrainConfig
from synth.evaluation import mean_ci
from synth.training import select_training_indices, train_classifier, train_recipe

# The study's sizes: 220 real training images (uneven classes), 660 synthetic (220 per class).
REAL = [0] * 75 + [1] * 70 + [2] * 75
SYNTHETIC = [0] * 220 + [1] * 220 + [2] * 220


def _recipe(kind: str, **kwargs) -> RecipeConfig:
    return RecipeConfig(name="r", kind=kind, **kwargs)


def _per_class(labels, indices) -> dict[int, int]:
    return dict(sorted(Counter(labels[i] for i in indices).items()))


def test_select_training_indices_real_and_synthetic_take_everything():
    real = select_training_indices(_recipe("real"), REAL, SYNTHETIC, seed=0)
    assert real.real == tuple(range(220))
    assert real.synthetic == real.pretrain_synthetic == ()
    syn = select_training_indices(_recipe("synthetic"), REAL, SYNTHETIC, seed=0)
    assert syn.synthetic == tuple(range(660))
    assert syn.real == syn.pretrain_synthetic == ()


def test_select_training_indices_mix_30_is_exact_and_stratified():
    sel = select_training_indices(_recipe("mix", synthetic_fraction=0.3), REAL, SYNTHETIC, seed=0)
    assert (len(sel.real), len(sel.synthetic)) == (154, 66)
    assert len(set(sel.real)) == 154 and len(set(sel.synthetic)) == 66
    assert _per_class(SYNTHETIC, sel.synthetic) == {0: 22, 1: 22, 2: 22}
    # 154 * 75/220 = 52.5, 154 * 70/220 = 49.0: largest remainder gives the spare one to class 0
    # (tie 0.5 vs 0.5 broken by class id), so 53 + 49 + 52 = 154.
    assert _per_class(REAL, sel.real) == {0: 53, 1: 49, 2: 52}


def test_select_training_indices_mix_50_is_exact_and_stratified():
    sel = select_training_indices(_recipe("mix", synthetic_fraction=0.5), REAL, SYNTHETIC, seed=0)
    assert (len(sel.real), len(sel.synthetic)) == (110, 110)
    # 110 * 75/220 = 37.5 (twice), 110 * 70/220 = 35.0: floors sum to 109, the spare one goes
    # to class 0 (tied remainders are broken by class id).
    assert _per_class(REAL, sel.real) == {0: 38, 1: 35, 2: 37}
    assert sum(_per_class(SYNTHETIC, sel.synthetic).values()) == 110


def test_select_training_indices_mix_honours_total():
    recipe = _recipe("mix", synthetic_fraction=0.25, total=100)
    sel = select_training_indices(recipe, REAL, SYNTHETIC, seed=0)
    assert (len(sel.real), len(sel.synthetic)) == (75, 25)


def test_select_training_indices_real_plus_synthetic_k2():
    recipe = _recipe("real-plus-synthetic", synthetic_per_real=2.0)
    sel = select_training_indices(recipe, REAL, SYNTHETIC, seed=0)
    assert sel.real == tuple(range(220))
    assert len(sel.synthetic) == 440
    assert _per_class(SYNTHETIC, sel.synthetic) == {0: 147, 1: 147, 2: 146}


def test_select_training_indices_pretrain_finetune_uses_both_pools_whole():
    sel = select_training_indices(_recipe("pretrain-finetune"), REAL, SYNTHETIC, seed=0)
    assert sel.pretrain_synthetic == tuple(range(660))
    assert sel.real == tuple(range(220))
    assert sel.synthetic == ()


def test_select_training_indices_not_enough_synthetic_says_how_many():
    recipe = _recipe("real-plus-synthetic", synthetic_per_real=4.0)
    with pytest.raises(
        ValueError, match=r"needs 880 synthetic images but only 660.*images_per_class"
    ):
        select_training_indices(recipe, REAL, SYNTHETIC, seed=0)


def test_select_training_indices_not_enough_real_says_how_many():
    recipe = _recipe("mix", synthetic_fraction=0.1, total=500)
    with pytest.raises(ValueError, match="needs 450 real images but only 220"):
        select_training_indices(recipe, REAL, SYNTHETIC, seed=0)


def test_select_training_indices_synthetic_with_empty_pool_fails():
    with pytest.raises(ValueError, match="needs synthetic images, got none"):
        select_training_indices(_recipe("synthetic"), REAL, [], seed=0)


def test_select_training_indices_is_deterministic_per_seed():
    recipe = _recipe("mix", synthetic_fraction=0.3)
    a = select_training_indices(recipe, REAL, SYNTHETIC, seed=4)
    assert a == select_training_indices(recipe, REAL, SYNTHETIC, seed=4)
    b = select_training_indices(recipe, REAL, SYNTHETIC, seed=5)
    assert a.real != b.real and a.synthetic != b.synthetic


def test_mean_ci_matches_hand_computed_t_interval():
    mean, half = mean_ci([0.9, 0.95, 1.0])
    # std (ddof=1) = 0.05; t_{0.975, 2} = 4.302653; half = 4.302653 * 0.05 / sqrt(3)
    assert mean == pytest.approx(0.95)
    assert half == pytest.approx(4.302653 * 0.05 / math.sqrt(3), rel=1e-6)
    assert half == pytest.approx(0.1242, abs=1e-4)


def test_mean_ci_single_value_has_zero_width():
    assert mean_ci([0.8]) == (0.8, 0.0)


def test_mean_ci_rejects_empty_values():
    with pytest.raises(ValueError, match="empty"):
        mean_ci([])


def _pools(size: int = 32):
    g = torch.Generator().manual_seed(0)
    real_labels = torch.arange(4) % 2
    syn_labels = torch.arange(6) % 2
    real = torch.randint(0, 256, (4, 3, size, size), dtype=torch.uint8, generator=g)
    syn = torch.randint(0, 256, (6, 3, size, size), dtype=torch.uint8, generator=g)
    return real, real_labels, syn, syn_labels


def test_train_recipe_pretrain_finetune_runs_both_phases():
    # budget 'epochs': whole epochs per phase (tests/test_budget.py covers the 'steps' split)
    config = TrainConfig(epochs=2, finetune_epochs=1, batch_size=4, device="cpu", budget="epochs")
    result = train_recipe(
        _recipe("pretrain-finetune"), *_pools(), config=config, n_classes=2, seed=0
    )
    assert [(s.phase, s.epoch) for s in result.history] == [
        ("pretrain", 1),
        ("pretrain", 2),
        ("finetune", 1),
    ]
    # Without the synthetic pretraining the same real-only run ends elsewhere.
    real, real_labels, _, _ = _pools()
    plain = train_classifier(real, real_labels, config=config, n_classes=2, seed=0, epochs=1)
    assert not torch.equal(result.model.classifier[-1].weight, plain.model.classifier[-1].weight)


def test_train_recipe_mix_trains_on_the_selection():
    config = TrainConfig(epochs=1, batch_size=4, device="cpu")
    a = train_recipe(_recipe("mix", synthetic_fraction=0.5), *_pools(), config=config,
                     n_classes=2, seed=0)  # fmt: skip
    b = train_recipe(_recipe("real"), *_pools(), config=config, n_classes=2, seed=0)
    # Same seed and config, different images: the weights must differ.
    assert not torch.equal(a.model.classifier[-1].weight, b.model.classifier[-1].weight)
