"""Training recipes: which real and synthetic images train a model, and how to train it.

Selection is pure index arithmetic over label lists, so it can be tested and cached without any
images. Subsets are drawn class-stratified (each class in proportion to its count in its pool,
largest-remainder rounding so the totals are exact) and seeded.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.data.preprocess import TensorData, TensorSet, load_tensor_set
from synth.errors import InputError
from synth.storage import content_key
from synth.training.augment import AUGMENTATIONS
from synth.training.trainer import (
    Checkpoint,
    TrainedModel,
    save_checkpoint,
    steps_per_epoch,
    train_classifier,
)

__all__ = [
    "RECIPES",
    "RecipeKind",
    "RecipeSelection",
    "gate_recipe",
    "select_training_indices",
    "step_budget",
    "train_checkpoint",
    "train_recipe",
    "uses_synthetic",
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
            "raise generation.images_per_class, or loosen the quality gate (`quality`; "
            "quality.jsonl says what it dropped)"
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


def _select_shots(recipe, real, syn, real_rng, syn_rng) -> RecipeSelection:
    _require(real, "real", recipe)
    # At least one image: a share too small to round to any still means "a few shots".
    n_real = max(1, _round_half_up(len(real) * recipe.real_fraction))
    chosen_real = _draw(real, n_real, real_rng, kind="real", recipe=recipe)
    if recipe.shots_synthetic == "none":
        return RecipeSelection(real=chosen_real, synthetic=())
    _require(syn, "synthetic", recipe)
    if recipe.shots_synthetic == "all":
        return RecipeSelection(real=chosen_real, synthetic=tuple(range(len(syn))))
    n_syn = _round_half_up(n_real * recipe.synthetic_per_real)
    synthetic = _draw(syn, n_syn, syn_rng, kind="synthetic", recipe=recipe)
    return RecipeSelection(real=chosen_real, synthetic=synthetic)


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
    augmentation: str | None = None  # a key of AUGMENTATIONS, applied per training batch


# The one table of recipe kinds: `RecipeConfig.kind` takes its choices from these keys, so a new
# kind is one entry here.
RECIPES: dict[str, RecipeKind] = {
    "real": RecipeKind("all real training images", _select_real),
    "real-augmented": RecipeKind(
        "all real training images, strongly augmented (flips, crops and shifts, colour jitter, "
        "grayscale, noise, random fill): the cheap alternative to synthetic images",
        _select_real,
        augmentation="strong",
    ),
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
    "shots": RecipeKind(
        "a `real_fraction` share of the real images (class-stratified), with no, all or "
        "`synthetic_per_real` matched synthetic images (`shots_synthetic`)",
        _select_shots,
    ),
}


def uses_synthetic(recipe: RecipeConfig) -> bool:
    """Whether `recipe` may train on synthetic images; False: it takes no synthetic set at all.

    The flow trains such recipes before the quality gate (which needs a real-only model), so
    their checkpoints never depend on the synthetic images. True whenever unsure.
    """
    if RECIPES[recipe.kind].select is _select_real:
        return False
    return not (recipe.kind == "shots" and recipe.shots_synthetic == "none")


def gate_recipe(recipes: Sequence[RecipeConfig], baseline: str) -> RecipeConfig:
    """The real-only recipe whose first-seed model the quality gate scores with.

    The baseline when it is a plain 'real' recipe, else the first 'real' recipe, else one made
    for the gate alone (trained, never evaluated).
    """
    real = sorted((r for r in recipes if r.kind == "real"), key=lambda r: r.name != baseline)
    return real[0] if real else RecipeConfig(name="quality-gate", kind="real")


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

    Under `config.budget` 'steps' every recipe trains `step_budget(config, len(real_labels))`
    optimiser steps, whatever its image count. For 'pretrain-finetune' the model trains
    `config.epochs` on all synthetic images, then `config.finetune_epochs` on all real ones from
    those weights (a fresh Adam state), or splits the step budget in that ratio; the history
    holds both phases, marked 'pretrain' and 'finetune'.
    """
    sel = select_training_indices(recipe, real_labels.tolist(), syn_labels.tolist(), seed)
    budget = step_budget(config, len(real_labels))
    augment = RECIPES[recipe.kind].augmentation
    common = {
        "config": config,
        "n_classes": n_classes,
        "seed": seed,
        "augment": AUGMENTATIONS[augment] if augment else None,
    }
    if sel.pretrain_synthetic:
        pre_steps = fine_steps = None
        if budget is not None:
            share = config.epochs / (config.epochs + config.finetune_epochs)
            pre_steps = min(budget - 1, max(1, _round_half_up(budget * share)))
            fine_steps = budget - pre_steps
        pre = train_classifier(
            *_subset(syn_images, syn_labels, sel.pretrain_synthetic), steps=pre_steps, **common
        )
        fine = train_classifier(
            *_subset(real_images, real_labels, sel.real),
            init_state=pre.model.state_dict(),
            epochs=config.finetune_epochs,
            steps=fine_steps,
            **common,
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
    return train_classifier(images, labels, steps=budget, **common)


def step_budget(config: TrainConfig, n_real: int) -> int | None:
    """Optimiser steps every recipe gets under budget 'steps' (None under 'epochs').

    Default: `config.epochs` passes over the whole real train split (`n_real` images), which is
    what real-only training takes anyway, so the real-only model is unchanged.
    """
    if config.budget == "epochs":
        return None
    if config.steps is not None:
        return config.steps
    if n_real == 0:
        raise InputError("budget 'steps' needs `train.steps` when there are no real images")
    return config.epochs * steps_per_epoch(n_real, config.batch_size)


def _subset(
    images: torch.Tensor, labels: torch.Tensor, chosen: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.tensor(chosen, dtype=torch.long)
    return images[index], labels[index]


def train_checkpoint(
    recipe: RecipeConfig,
    seed: int,
    real_train: TensorSet,
    synthetic: TensorSet | None,
    config: TrainConfig,
    class_names: tuple[str, ...],
    models_dir: Path,
    *,
    preprocess: PreprocessConfig | None = None,
) -> Checkpoint:
    """Train `recipe` with `seed` on the cached tensors and save a self-describing checkpoint.

    The checkpoint records the preprocessing its tensors were made with (read from the tensor
    files; `preprocess`, when given, must match it) and which images it trained on. `synthetic`
    is None for a recipe that trains on real images only (`uses_synthetic`).
    """
    real = load_tensor_set(real_train.path, digest=real_train.digest)
    # None: a recipe that `uses_synthetic` says takes none; an empty pool fails it by name
    syn = (
        dataclasses.replace(
            real,
            images=real.images[:0],
            labels=real.labels[:0],
            synthetic=real.synthetic[:0],
            keys=(),
        )
        if synthetic is None
        else load_tensor_set(synthetic.path, digest=synthetic.digest)
    )
    made_with, seen, sel = _provenance(recipe, seed, real, syn)
    if preprocess is not None and preprocess != made_with:
        raise ValueError(f"`preprocess` {preprocess} differs from the tensors' {made_with}")
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
        recipe.model_dump(),
        seed,
        real_train.digest,
        None if synthetic is None else synthetic.digest,
        config.model_dump(),
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
        preprocess=made_with,
        train_image_keys=seen,
        real_images=len(sel.real),
        synthetic_images=len(sel.synthetic + sel.pretrain_synthetic),
    )


def _provenance(
    recipe: RecipeConfig, seed: int, real: TensorData, syn: TensorData
) -> tuple[PreprocessConfig, list[str], RecipeSelection]:
    """The preprocessing of the pools `recipe` trains on, the keys of the images it uses, and
    its selection."""
    sel = select_training_indices(recipe, real.labels.tolist(), syn.labels.tolist(), seed)
    used = [
        (data, chosen)
        for data, chosen in ((real, sel.real), (syn, sel.synthetic + sel.pretrain_synthetic))
        if chosen
    ]
    configs = {data.config for data, _ in used}
    if len(configs) != 1:  # one model, one input format: the flow preprocesses both alike
        raise ValueError(f"the training tensors were preprocessed differently: {configs}")
    return configs.pop(), [data.keys[i] for data, chosen in used for i in chosen], sel
