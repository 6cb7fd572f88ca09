"""Fair budgets and honest baselines: equal optimiser steps, real-augmented, the shots family."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from synth.config import ConfigError, ExperimentConfig, RecipeConfig, TrainConfig, parse_config
from synth.training import (
    load_checkpoint,
    save_checkpoint,
    select_training_indices,
    step_budget,
    steps_per_epoch,
    strong_augment,
    train_classifier,
    train_recipe,
)

CPU = TrainConfig(epochs=2, batch_size=8, device="cpu")
REAL = [0] * 75 + [1] * 70 + [2] * 75  # the study's 220 real training images
SYNTHETIC = [0] * 220 + [1] * 220 + [2] * 220


def _data(n: int, seed: int, size: int = 16):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % 3


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _train(kind: str, config: TrainConfig = CPU, **fields):
    real, syn = _data(20, 0), _data(30, 1)
    recipe = RecipeConfig(name="r", kind=kind, **fields)
    return train_recipe(recipe, *real, *syn, config=config, n_classes=3, seed=0)


def test_steps_per_epoch_folds_a_lone_trailing_image():
    assert [steps_per_epoch(n, 8) for n in (8, 9, 16, 17, 20)] == [1, 1, 2, 2, 3]


def test_steps_budget_gives_every_recipe_the_same_steps():
    # Default budget: 2 epochs over the 20 real images at batch 8 = 2 x 3 = 6 steps, whatever
    # the recipe's own image count (real + synthetic here is 50 images).
    kinds = {
        "real": {},
        "real-augmented": {},
        "synthetic": {},
        "real-plus-synthetic": {"synthetic_per_real": 1.0},
        "pretrain-finetune": {},
        "shots": {"real_fraction": 0.5, "shots_synthetic": "all"},
    }
    steps = {kind: _train(kind, **fields).steps for kind, fields in kinds.items()}
    assert step_budget(CPU, 20) == 6
    assert set(steps.values()) == {6}, steps
    pre = _train("pretrain-finetune").history
    # split epochs : finetune_epochs = 2 : 5 of 6 steps: 2 pretraining, 4 fine-tuning
    assert sum(s.steps for s in pre if s.phase == "pretrain") == 2
    assert sum(s.steps for s in pre if s.phase == "finetune") == 4


def test_epochs_budget_gives_bigger_sets_more_steps():
    config = CPU.model_copy(update={"budget": "epochs"})
    assert step_budget(config, 20) is None
    real = _train("real", config).steps
    both = _train("real-plus-synthetic", config, synthetic_per_real=1.0).steps
    assert (real, both) == (2 * 3, 2 * 5)


def test_steps_budget_leaves_the_real_only_model_unchanged():
    images, labels = _data(20, 0)
    by_epochs = train_classifier(images, labels, config=CPU, n_classes=3, seed=0)
    by_steps = _train("real")
    assert _same(by_epochs.model, by_steps.model)
    assert [s.steps for s in by_steps.history] == [3, 3]


def test_explicit_steps_end_mid_epoch():
    config = CPU.model_copy(update={"steps": 4})
    trained = _train("real", config)
    assert [s.steps for s in trained.history] == [3, 1]


def test_real_augmented_differs_from_real():
    assert not _same(_train("real").model, _train("real-augmented").model)


def test_strong_augment_is_seeded_changes_images_and_stays_uint8():
    batch, _ = _data(8, 3, size=32)
    out = strong_augment(batch, torch.Generator().manual_seed(0))
    again = strong_augment(batch, torch.Generator().manual_seed(0))
    other = strong_augment(batch, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert torch.equal(out, again) and not torch.equal(out, other)
    assert not torch.equal(out, batch)
    with pytest.raises(ValueError, match="uint8"):
        strong_augment(batch.float(), torch.Generator())


def test_shots_selects_the_share_stratified_with_or_without_synthetic():
    def select(**fields):
        recipe = RecipeConfig(name="s", kind="shots", **fields)
        return select_training_indices(recipe, REAL, SYNTHETIC, seed=0)

    quarter = select(real_fraction=0.25)
    assert len(quarter.real) == 55 and quarter.synthetic == ()  # 220 x 0.25
    # 55 x 75/220 = 18.75, x 70/220 = 17.5: largest remainders give 19 + 17 + 19
    assert Counter(REAL[i] for i in quarter.real) == {0: 19, 1: 17, 2: 19}
    with_all = select(real_fraction=0.25, shots_synthetic="all")
    assert with_all.real == quarter.real and len(with_all.synthetic) == 660
    matched = select(real_fraction=0.25, shots_synthetic="matched", synthetic_per_real=2.0)
    assert len(matched.synthetic) == 110
    assert Counter(SYNTHETIC[i] for i in matched.synthetic) == {0: 37, 1: 37, 2: 36}
    assert len(select(real_fraction=0.001).real) == 1  # never empty


def test_checkpoint_records_steps_and_image_counts(tmp_path):
    trained = _train("real-plus-synthetic", synthetic_per_real=1.0)
    path = tmp_path / "m.pt"
    save_checkpoint(
        path, trained.model, model_name=trained.model_name, n_classes=3, size=trained.size,
        class_names=("a", "b", "c"), train_config=CPU, recipe=None, seed=0,
        history=trained.history, real_images=20, synthetic_images=20,
    )  # fmt: skip
    _, info = load_checkpoint(path)
    assert info.steps == trained.steps == 6
    assert (info.real_images, info.synthetic_images) == (20, 20)


def test_experiment_config_expands_shots_and_checks_the_baseline():
    config = parse_config(ExperimentConfig, {"shots": [0.5, 0.1, 1.0]})
    names = [r.name for r in config.all_recipes()]
    assert "real-augmented" in names and config.baseline == "real"
    # 100% real-only is the 'real' recipe itself: not trained twice
    assert names[-5:] == [
        "shots-010",
        "shots-010-syn",
        "shots-050",
        "shots-050-syn",
        "shots-100-syn",
    ]
    assert config.train.budget == "steps"
    with pytest.raises(ConfigError, match="`baseline` 'nope'"):
        parse_config(ExperimentConfig, {"baseline": "nope"})
    with pytest.raises(ConfigError, match="shots"):
        parse_config(ExperimentConfig, {"shots": [0.0]})
