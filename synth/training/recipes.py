"""Training recipes: which real and synthetic images train a model, and how to train it.

Selection is pure index arithmetic over label lists, so it can be tested and cached without any
images. Subsets are drawn class-stratified (each class in proportion to its count in its pool,
largest-remainder rounding so the totals are exact) and seeded.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from synth.config import RecipeConfig, TrainConfig
from synth.data.preprocess import TensorSet, load_tensor_set
from synth.errors import InputError
from synth.storage import content_key
from synth.training.trainer import Checkpoint, TrainedModel, save_checkpoint, train_classifier

__all__ = [
    "RECIPES",
    "RecipeKind",
    "RecipeSelection",
    "select_training_indices",
    "train_checkpoint",
    "train_recipe",
]


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
        raise InputError(
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
        raise InputError(f"recipe {recipe.name!r} ({recipe.kind}) needs {kind} images, got none")


def _select_real(recipe, real, syn, real_rng, syn_rng) -> RecipeSelection:
    _require(real, "real", recipe)
    return RecipeSelection(real=tuple(range(len(real))), synthetic=())


def _select_synthetic(recipe, real, syn, real_rng, syn_rng) -> RecipeSelection:
    _require(syn, "synthetic", recipe)
    return RecipeSelection(real=(), synthetic=tuple(range(len(syn))))


def _select_pretrain_finetune(recipe, real, syn, real_rng, syn_rng) -> RecipeSelection:
    _require(real, "real", recipe)
    _require(syn, "synthetic", recipe)
    everything_syn = tuple(range(len(syn)))
    return RecipeSelection(
        real=tuple(range(len(real))), synthetic=(), pretrain_synthetic=everything_syn
    )


def _select_real_plus_synthetic(recipe, real, syn, real_rng, syn_rng) -> RecipeSelection:
    _require(real, "real", recipe)
    n_syn = _round_half_up(len(real) * recipe.synthetic_per_real)
    synthetic = _draw(syn, n_syn, syn_rng, kind="synthetic", recipe=recipe)
    return RecipeSelection(real=tuple(range(len(real))), synthetic=synthetic)


def _select_mix(recipe, real, syn, real_rng, syn_rng) -> RecipeSelection:
    total = recipe.total or len(real)
    n_syn = _round_half_up(total * recipe.synthetic_fraction)
    chosen_real = _draw(real, total - n_syn, real_rng, kind="real", recipe=recipe)
    synthetic = _draw(syn, n_syn, syn_rng, kind="synthetic", recipe=recipe)
    if not chosen_real and not synthetic:
        raise InputError(f"recipe {recipe.name!r} selects no images")
    return RecipeSelection(real=chosen_real, synthetic=synthetic)


@dataclass(frozen=True)
class RecipeKind:
    """A kind of training recipe: what it means, and how it picks its training images."""

    description: str
    select: Callable[..., RecipeSelection]


# The one table of recipe kinds: `RecipeConfig.kind` takes its choices from these keys, so a new
# kind is one entry here.
RECIPES: dict[str, RecipeKind] = {
    "real": RecipeKind("all real training images", _select_real),
    "synthetic": RecipeKind("all synthetic images", _select_synthetic),
    "mix": RecipeKind(
        "`total` images (default: the real pool size), a `synthetic_fraction` share synthetic",
        _select_mix,
    ),
    "real-plus-synthetic": RecipeKind(
        "all real images + `synthetic_per_real` synthetic images per real one",
        _select_real_plus_synthetic,
    ),
    "pretrain-finetune": RecipeKind(
        "pretrain on all synthetic images, then fine-tune on all real ones",
        _select_pretrain_finetune,
    ),
}


def select_training_indices(
    recipe: RecipeConfig,
    real_labels: Sequence[int],
    synthetic_labels: Sequence[int],
    seed: int,
) -> RecipeSelection:
    """Choose the training images of `recipe` from the real and synthetic pools.

    Args:
        recipe: its `kind` is a key of `RECIPES`, which says how the images are chosen.
        real_labels: class id of each real training image.
        synthetic_labels: class id of each synthetic image.
        seed: seeds the draws of subsets.

    Returns:
        Sorted indices into each pool.

    Raises:
        InputError: a pool holds fewer images than the recipe needs.
    """
    real_rng = random.Random(f"{seed}:real")  # separate streams: one pool's size can't shift
    syn_rng = random.Random(f"{seed}:synthetic")  # the other pool's draw
    kind = RECIPES[recipe.kind]  # the config only admits registered kinds
    return kind.select(recipe, list(real_labels), list(synthetic_labels), real_rng, syn_rng)


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


def train_checkpoint(
    recipe: RecipeConfig,
    seed: int,
    real_train: TensorSet,
    synthetic: TensorSet,
    config: TrainConfig,
    class_names: tuple[str, ...],
    models_dir: Path,
) -> Checkpoint:
    """Train `recipe` with `seed` on the cached tensors and save a self-describing checkpoint."""
    real = load_tensor_set(real_train.path, digest=real_train.digest)
    syn = load_tensor_set(synthetic.path, digest=synthetic.digest)
    trained = train_recipe(
        recipe,
        real.images,
        real.labels,
        syn.images,
        syn.labels,
        config=config,
        n_classes=len(class_names),
        seed=seed,
    )
    inputs = content_key(
        recipe.model_dump(), seed, real_train.digest, synthetic.digest, config.model_dump()
    )
    path = Path(models_dir) / f"{recipe.name}-seed{seed}-{inputs}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(
        path,
        trained.model,
        model_name=trained.model_name,
        n_classes=trained.n_classes,
        size=trained.size,
        class_names=class_names,
        train_config=config,
        recipe=recipe,
        seed=seed,
        history=trained.history,
    )
