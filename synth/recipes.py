"""Training recipes: which real and synthetic images train a model, and how to train it.

Selection is pure index arithmetic over label lists, so it can be tested and cached without any
images. Subsets are drawn class-stratified (each class in proportion to its count in its pool,
largest-remainder rounding so the totals are exact) and seeded.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from synth.config import RecipeConfig, TrainConfig
from synth.train import TrainedModel, train_classifier

__all__ = ["RecipeSelection", "mean_ci", "select_training_indices", "train_recipe"]


@dataclass(frozen=True)
class RecipeSelection:
    """Indices (sorted) into the real and synthetic training pools for one recipe.

    `pretrain_synthetic` is non-empty only for 'pretrain-finetune': those images pretrain the
    model, then `real` fine-tunes it. Otherwise `real` and `synthetic` train together.
    """

    real: tuple[int, ...]
    synthetic: tuple[int, ...]
    pretrain_synthetic: tuple[int, ...] = ()


def _round_half_up(x: float) -> int:
    # Python's round() is banker's rounding (round(12.5) == 12); counts read better half-up.
    return math.floor(x + 0.5 + 1e-9)


def _stratified_counts(labels: Sequence[int], n: int) -> dict[int, int]:
    """Per-class counts summing exactly to `n`, proportional to the class counts in `labels`."""
    counts: dict[int, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    quotas = {c: n * k / len(labels) for c, k in counts.items()}
    chosen = {c: math.floor(q) for c, q in quotas.items()}
    # Largest remainder first; ties go to the lower class id so the result is deterministic.
    by_remainder = sorted(quotas, key=lambda c: (-(quotas[c] - chosen[c]), c))
    for c in by_remainder[: n - sum(chosen.values())]:
        chosen[c] += 1
    return chosen


def _draw(
    labels: Sequence[int], n: int, rng: random.Random, *, kind: str, recipe: RecipeConfig
) -> tuple[int, ...]:
    """`n` indices of `labels`, class-stratified, sorted; all of them when `n` is the pool size."""
    if n > len(labels):
        hint = (
            "raise generation.images_per_class"
            if kind == "synthetic"
            else "lower the recipe's `total` or raise its synthetic share"
        )
        raise ValueError(
            f"recipe {recipe.name!r} ({recipe.kind}) needs {n} {kind} images but only "
            f"{len(labels)} are available; {hint}"
        )
    if n == len(labels):
        return tuple(range(n))
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    picked: list[int] = []
    for label, count in sorted(_stratified_counts(labels, n).items()):
        picked.extend(rng.sample(by_class[label], count))
    return tuple(sorted(picked))


def _require(labels: Sequence[int], kind: str, recipe: RecipeConfig) -> None:
    if not labels:
        raise ValueError(f"recipe {recipe.name!r} ({recipe.kind}) needs {kind} images, got none")


def select_training_indices(
    recipe: RecipeConfig,
    real_labels: Sequence[int],
    synthetic_labels: Sequence[int],
    seed: int,
) -> RecipeSelection:
    """Choose the training images of `recipe` from the real and synthetic pools.

    Args:
        recipe: 'real' (all real), 'synthetic' (all synthetic), 'mix' (`total` images, default
            the real pool size, a `synthetic_fraction` share synthetic), 'real-plus-synthetic'
            (all real + `synthetic_per_real` synthetic per real one) or 'pretrain-finetune'
            (all synthetic to pretrain, all real to fine-tune).
        real_labels: class id of each real training image.
        synthetic_labels: class id of each synthetic image.
        seed: seeds the draws of subsets.

    Returns:
        Sorted indices into each pool.

    Raises:
        ValueError: a pool holds fewer images than the recipe needs.
    """
    real_labels, synthetic_labels = list(real_labels), list(synthetic_labels)
    real_rng = random.Random(f"{seed}:real")  # separate streams: one pool's size can't shift
    syn_rng = random.Random(f"{seed}:synthetic")  # the other pool's draw
    everything_real = tuple(range(len(real_labels)))
    everything_syn = tuple(range(len(synthetic_labels)))
    if recipe.kind == "real":
        _require(real_labels, "real", recipe)
        return RecipeSelection(real=everything_real, synthetic=())
    if recipe.kind == "synthetic":
        _require(synthetic_labels, "synthetic", recipe)
        return RecipeSelection(real=(), synthetic=everything_syn)
    if recipe.kind == "pretrain-finetune":
        _require(real_labels, "real", recipe)
        _require(synthetic_labels, "synthetic", recipe)
        return RecipeSelection(
            real=everything_real, synthetic=(), pretrain_synthetic=everything_syn
        )
    if recipe.kind == "real-plus-synthetic":
        _require(real_labels, "real", recipe)
        n_syn = _round_half_up(len(real_labels) * recipe.synthetic_per_real)
        synthetic = _draw(synthetic_labels, n_syn, syn_rng, kind="synthetic", recipe=recipe)
        return RecipeSelection(real=everything_real, synthetic=synthetic)
    if recipe.kind == "mix":
        total = recipe.total or len(real_labels)
        n_syn = _round_half_up(total * recipe.synthetic_fraction)
        real = _draw(real_labels, total - n_syn, real_rng, kind="real", recipe=recipe)
        synthetic = _draw(synthetic_labels, n_syn, syn_rng, kind="synthetic", recipe=recipe)
        if not real and not synthetic:
            raise ValueError(f"recipe {recipe.name!r} selects no images")
        return RecipeSelection(real=real, synthetic=synthetic)
    raise ValueError(f"unknown recipe kind {recipe.kind!r}")


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and Student-t confidence half-width of `values` (half-width 0 for one value).

    Args:
        values: one score per seed.
        confidence: two-sided confidence level in (0, 1).

    Returns:
        (mean, half_width): the interval is mean +- half_width.
    """
    if not values:
        raise ValueError("`values` is empty: need at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence}")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, 0.0
    from scipy.stats import t  # slow import; only callers of mean_ci pay for it

    half = float(t.ppf((1 + confidence) / 2, len(values) - 1)) * statistics.stdev(values)
    return mean, half / math.sqrt(len(values))


def train_recipe(
    recipe: RecipeConfig,
    real_images: torch.Tensor,
    real_labels: torch.Tensor,
    syn_images: torch.Tensor,
    syn_labels: torch.Tensor,
    *,
    config: TrainConfig,
    n_classes: int,
    seed: int,
) -> TrainedModel:
    """Select `recipe`'s images and train on them (pretrain-finetune: synthetic, then real).

    For 'pretrain-finetune' the model trains `config.epochs` on all synthetic images, then
    `config.finetune_epochs` on all real ones from those weights (a fresh Adam state); the
    history holds both phases, marked 'pretrain' and 'finetune'.
    """
    sel = select_training_indices(recipe, real_labels.tolist(), syn_labels.tolist(), seed)
    if sel.pretrain_synthetic:
        pre = train_classifier(
            *_subset(syn_images, syn_labels, sel.pretrain_synthetic),
            config=config,
            n_classes=n_classes,
            seed=seed,
        )
        fine = train_classifier(
            *_subset(real_images, real_labels, sel.real),
            config=config,
            n_classes=n_classes,
            seed=seed,
            init_state=pre.model.state_dict(),
            epochs=config.finetune_epochs,
        )
        history = tuple(replace(s, phase="pretrain") for s in pre.history) + tuple(
            replace(s, phase="finetune") for s in fine.history
        )
        return replace(fine, history=history)
    # An unused pool is skipped entirely: it may be an empty placeholder of another shape.
    parts = [
        _subset(images, labels, chosen)
        for images, labels, chosen in (
            (real_images, real_labels, sel.real),
            (syn_images, syn_labels, sel.synthetic),
        )
        if chosen
    ]
    images = torch.cat([images for images, _ in parts])
    labels = torch.cat([labels for _, labels in parts])
    return train_classifier(images, labels, config=config, n_classes=n_classes, seed=seed)


def _subset(
    images: torch.Tensor, labels: torch.Tensor, chosen: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.tensor(chosen, dtype=torch.long)
    return images[index], labels[index]
