"""The `shots` family's answer: what the synthetic images were worth in real images.

Real-only recipes at several real-image counts (`shots-025`, `shots-050`, and `real` as the
100% point) trace accuracy against real images used; each `shots-...-syn` recipe adds synthetic
images at one of those counts, and `synth.evaluation.statistics.exchange_rate` inverts the curve
at its accuracy: "N synthetic images were worth about M real images".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synth.config import RecipeConfig
from synth.evaluation.paired_runs import PairedRuns
from synth.evaluation.statistics import ExchangeRate, exchange_rate

__all__ = ["ShotsExchange", "shots_exchange"]


@dataclass(frozen=True)
class ShotsExchange:
    """What a `shots-...-syn` recipe's synthetic images were worth on one test set."""

    test_set: str
    recipe: str
    rate: ExchangeRate
    curve: tuple[str, ...]  # the real-only recipes it was read from, fewest real images first


def _is_real_only(recipe: RecipeConfig) -> bool:
    return recipe.kind == "real" or (recipe.kind == "shots" and recipe.shots_synthetic == "none")


def _curve_points(runs: PairedRuns, recipes: Sequence[RecipeConfig], test_set: str):
    """Real-only recipes by real image count (the curve), and the `...-syn` shots recipes."""
    curve: dict[int, str] = {}
    mixed = []
    for recipe in recipes:
        if not runs.has(recipe.name, test_set):
            continue
        record = runs.one(recipe.name, test_set)
        if not record.real_images:  # not recorded, or none
            continue
        if _is_real_only(recipe):
            curve.setdefault(record.real_images, recipe.name)
        elif recipe.kind == "shots" and record.synthetic_images:
            mixed.append(record)
    return curve, mixed


def shots_exchange(
    runs: PairedRuns,
    recipes: Sequence[RecipeConfig],
    test_set: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[tuple[ShotsExchange, ...], tuple[str, ...]]:
    """The exchange rate of each `...-syn` shots recipe on `test_set`.

    Returns:
        The rates, and why any `...-syn` recipe got none.
    """
    curve, mixed = _curve_points(runs, recipes, test_set)
    if mixed and len(curve) < 2:
        return (), (
            f"no exchange rate on {test_set}: it needs real-only results at two or more real "
            "image counts (set `shots`, e.g. [0.25, 0.5, 1.0])",
        )
    counts, out, notices = sorted(curve), [], []
    for mix in mixed:
        if mix.real_images not in curve:
            notices.append(f"no exchange rate for {mix.recipe}: no real-only result at its count")
            continue
        seeds = runs.seeds([curve[c] for c in counts] + [mix.recipe], test_set)
        y = np.array(mix.labels)
        real = np.stack([runs.predictions(curve[c], test_set, seeds) == y for c in counts])
        mixed_scores = runs.predictions(mix.recipe, test_set, seeds) == y
        rate = exchange_rate(
            counts, real.astype(float), mix.real_images, mix.synthetic_images,
            mixed_scores.astype(float), n_boot=n_boot, seed=seed,
        )  # fmt: skip
        out.append(ShotsExchange(test_set, mix.recipe, rate, tuple(curve[c] for c in counts)))
    return tuple(out), tuple(notices)
