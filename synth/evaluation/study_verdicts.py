"""The study's answer: does each recipe help, hurt or replace the baseline, on each test set.

Every recipe is trained with the same seeds and scored on the same test images, so each is
compared with the baseline recipe (default `real`) image by image and seed by seed
(`synth.evaluation.statistics`). Synthetic-only recipes are judged as replacements (non-inferior
within a stated margin); the others as comparisons. Recipes that use synthetic images are also
compared with the cheap alternative (`real-augmented`) when it was trained. The `shots` family
gives the exchange rate of synthetic for real images. The method: docs/STATISTICS.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from synth.config import RecipeConfig
from synth.evaluation.paired_runs import PairedRuns
from synth.evaluation.scoring import EvalRecord
from synth.evaluation.shots_exchange import ShotsExchange, shots_exchange
from synth.evaluation.statistics import (
    ClassDifference,
    PairedDifference,
    Verdict,
    class_summary,
    paired_difference,
    paired_metric_difference,
    per_class_differences,
    verdict,
)

__all__ = ["RecipeScore", "RecipeVerdict", "ShotsExchange", "StudyVerdicts", "study_verdicts"]


@dataclass(frozen=True)
class RecipeScore:
    """A recipe's own accuracy on one test set, with an interval over seeds and test images."""

    recipe: str
    test_set: str
    accuracy: PairedDifference  # the recipe against "always wrong": its accuracy, paired draws
    seeds: int
    steps: int  # optimiser steps per model (the largest over seeds); 0 when not recorded
    real_images: int | None
    synthetic_images: int | None


@dataclass(frozen=True)
class RecipeVerdict:
    """One candidate against one baseline on one test set: accuracy verdict, F1, per class."""

    test_set: str
    verdict: Verdict  # on accuracy, the headline metric
    f1_macro: PairedDifference
    classes: tuple[ClassDifference, ...]  # empty against the cheap baseline
    classes_sentence: str | None


@dataclass(frozen=True)
class StudyVerdicts:
    """Every verdict of a study, the numbers behind them, and what the run could not do."""

    baseline: str
    cheap_baseline: str | None
    margin: float
    budget: str  # the training budget in words
    test_sets: tuple[str, ...]
    scores: tuple[RecipeScore, ...]
    verdicts: tuple[RecipeVerdict, ...]
    exchange: tuple[ShotsExchange, ...]
    notices: tuple[str, ...]

    def against(self, baseline: str, test_set: str) -> tuple[RecipeVerdict, ...]:
        """The verdicts against `baseline` on `test_set`, in recipe order."""
        return tuple(
            v for v in self.verdicts if v.verdict.baseline == baseline and v.test_set == test_set
        )

    def to_dict(self) -> dict:
        """The JSON form written to metrics.json["verdicts"] (docs/STATISTICS.md, section 9)."""
        return _json_safe(
            {
                "baseline": self.baseline,
                "cheap_baseline": self.cheap_baseline,
                "replacement_margin": self.margin,
                "metric": "accuracy",
                "budget": self.budget,
                "test_sets": list(self.test_sets),
                "notices": list(self.notices),
                "recipes": [_score_dict(s) for s in self.scores],
                "verdicts": [_verdict_dict(v) for v in self.verdicts],
                "exchange": [
                    {"test_set": e.test_set, "recipe": e.recipe, "curve": list(e.curve)}
                    | dataclasses.asdict(e.rate)
                    for e in self.exchange
                ],
            }
        )


def _json_safe(value):
    """NaN and infinities become None: JSON has neither, and a reader must not see 'NaN'."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def difference_dict(diff: PairedDifference) -> dict:
    """A paired difference as JSON, with its `degenerate` and `one_seed` flags."""
    return dataclasses.asdict(diff) | {"degenerate": diff.degenerate, "one_seed": diff.one_seed}


def _score_dict(score: RecipeScore) -> dict:
    acc = score.accuracy
    return {
        "recipe": score.recipe,
        "test_set": score.test_set,
        "seeds": score.seeds,
        "steps": score.steps,
        "real_images": score.real_images,
        "synthetic_images": score.synthetic_images,
        "accuracy": {"mean": acc.mean, "low": acc.low, "high": acc.high, "notice": acc.notice},
    }


def _verdict_dict(item: RecipeVerdict) -> dict:
    v = item.verdict
    classes = [
        {
            "name": c.name,
            "support": c.support,
            "recall": None if c.recall is None else difference_dict(c.recall),
            "f1": None if c.f1 is None else difference_dict(c.f1),
            "reason": c.reason,
        }
        for c in item.classes
    ]
    return {
        "test_set": item.test_set,
        "recipe": v.candidate,
        "baseline": v.baseline,
        "kind": v.kind,
        "label": v.label,
        "margin": v.margin,
        "sentence": v.sentence,
        "accuracy": difference_dict(v.difference),
        "f1_macro": difference_dict(item.f1_macro),
        "classes": classes,
        "classes_sentence": item.classes_sentence,
    }


def _synthetic_only(recipe: RecipeConfig, record: EvalRecord) -> bool:
    if record.real_images is not None:
        return record.real_images == 0 and bool(record.synthetic_images)
    return recipe.kind == "synthetic"


def _uses_synthetic(recipe: RecipeConfig, record: EvalRecord) -> bool:
    if record.synthetic_images is not None:
        return record.synthetic_images > 0
    return recipe.kind not in ("real", "real-augmented")


def _pair_budget(base: str, base_steps: int, cand: str, cand_steps: int) -> str:
    if not base_steps or not cand_steps:
        return "optimiser steps not recorded"
    if base_steps == cand_steps:
        return f"equal optimiser steps ({cand_steps:,} per model)"
    return (
        f"unequal optimiser steps ({cand} {cand_steps:,}, {base} {base_steps:,}), so part of the "
        "difference may come from training longer"
    )


def _budget(steps: Sequence[int], mode: str) -> str:
    known = [s for s in steps if s > 0]
    if not known:
        return "optimiser steps not recorded"
    if min(known) == max(known):
        return f"equal optimiser steps, {known[0]:,} per model (train.budget = '{mode}')"
    return (
        f"unequal optimiser steps, {min(known):,} to {max(known):,} per model (train.budget = "
        f"'{mode}'); recipes with more steps may win by training longer, not by their data"
    )


def _judge(runs: PairedRuns, base: str, recipe: RecipeConfig, test_set: str, *, per_class, **kw):
    """The verdict of `recipe` against `base` on `test_set`, or (None, why not)."""
    inputs, reason = runs.paired(base, recipe.name, test_set)
    if inputs is None:
        return None, reason
    y, base_pred, cand_pred = inputs
    names = runs.one(base, test_set).metrics.class_names
    draws = {"n_boot": kw["n_boot"], "seed": kw["seed"]}
    accuracy = paired_difference(base_pred == y, cand_pred == y, **draws)
    f1 = paired_metric_difference(
        y, base_pred, cand_pred, "f1_macro", n_classes=len(names), **draws
    )
    only_synthetic = _synthetic_only(recipe, runs.one(recipe.name, test_set))
    steps = (runs.steps(base, test_set), runs.steps(recipe.name, test_set))
    said = verdict(
        accuracy,
        kind="replacement" if only_synthetic else "comparison",
        margin=kw["margin"],
        candidate=recipe.name,
        baseline=base,
        test_set=test_set,
        budget=_pair_budget(base, steps[0], recipe.name, steps[1]),
        leakage_suspects=kw["leakage"],
    )
    classes, sentence = (), None
    if per_class:
        classes = per_class_differences(y, base_pred, cand_pred, names, **draws)
        sentence = class_summary(classes)
    return RecipeVerdict(test_set, said, f1, classes, sentence), None


def _score(runs: PairedRuns, recipe: str, test_set: str, n_boot: int, seed: int) -> RecipeScore:
    seeds = runs.seeds([recipe], test_set)
    record = runs.one(recipe, test_set)
    correct = runs.predictions(recipe, test_set, seeds) == np.array(record.labels)
    # Against an all-wrong baseline the paired difference is the accuracy itself, with the
    # same two-level interval (seeds, then test images) as every comparison.
    accuracy = paired_difference(np.zeros(correct.shape), correct, n_boot=n_boot, seed=seed)
    # The widening for few seeds can reach past 0 or 1 (0.945 [0.858, 1.011] on one seed): an
    # accuracy cannot, so the interval is cut to what is possible.
    low, high = max(accuracy.low, 0.0), min(accuracy.high, 1.0)
    accuracy = dataclasses.replace(accuracy, low=low, high=high)
    return RecipeScore(
        recipe, test_set, accuracy, len(seeds), runs.steps(recipe, test_set),
        record.real_images, record.synthetic_images,
    )  # fmt: skip


def _pairs(runs: PairedRuns, trained, baseline: str, cheap: str | None):
    """(baseline, recipe, per-class?) of every comparison; shots recipes are left to the
    exchange rate, and only recipes that use synthetic images meet the cheap baseline."""
    pairs = [(baseline, r, True) for r in trained if r.name != baseline and r.kind != "shots"]
    if cheap is None or cheap == baseline:
        return pairs
    for recipe in trained:
        record = next(iter(r for (n, _), by_seed in runs.by_key.items() if n == recipe.name
                           for r in by_seed.values()))  # fmt: skip
        if recipe.name not in (baseline, cheap) and recipe.kind != "shots":
            pairs += [(cheap, recipe, False)] if _uses_synthetic(recipe, record) else []
    return pairs


def study_verdicts(
    records: Sequence[EvalRecord],
    recipes: Sequence[RecipeConfig],
    *,
    baseline: str = "real",
    cheap_baseline: str | None = "real-augmented",
    margin: float = 0.02,
    budget: str = "steps",
    leakage: Mapping[str, int] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> StudyVerdicts:
    """Paired verdicts of every recipe against `baseline` on every test set, and the exchange rate.

    Args:
        records: Every model scored on every test set, with per-image predictions.
        recipes: The study's recipes (their kinds say which are synthetic-only and `shots`).
        baseline: The recipe every other is compared with.
        cheap_baseline: A second baseline for recipes that use synthetic images, when trained.
        margin: Non-inferiority margin (accuracy) of synthetic-only recipes ('replaces').
        budget: `TrainConfig.budget`, named in the sentence on optimiser steps.
        leakage: Synthetic images the leakage audit flagged, per test set, counted in verdicts.
        n_boot: Bootstrap replicates of each interval.
        seed: Seed of the bootstrap draws.

    Returns:
        The verdicts (recipe order within test-set order) and what could not be judged.
    """
    # 1. Line the records up by recipe, test set and seed
    runs = PairedRuns(records)
    test_sets = tuple(dict.fromkeys(r.test_set for r in records))
    trained = [r for r in recipes if any(runs.has(r.name, t) for t in test_sets)]
    names = {r.name for r in trained}
    notices: list[str] = []
    if baseline not in names:
        notices.append(f"no verdict: the baseline recipe {baseline!r} was not trained")
    cheap = cheap_baseline if cheap_baseline in names else None
    # 2. Each recipe's own accuracy, with the same interval as the comparisons
    scores = tuple(
        _score(runs, r.name, t, n_boot, seed) for t in test_sets for r in trained
        if runs.has(r.name, t)
    )  # fmt: skip
    # 3. Paired verdicts against the baseline (and the cheap one)
    verdicts = []
    pairs = _pairs(runs, trained, baseline, cheap) if baseline in names else []
    for test_set in test_sets:
        for base, recipe, per_class in pairs:
            if runs.has(base, test_set) and runs.has(recipe.name, test_set):
                judged, reason = _judge(
                    runs, base, recipe, test_set, per_class=per_class, margin=margin,
                    leakage=(leakage or {}).get(test_set), n_boot=n_boot, seed=seed,
                )  # fmt: skip
                verdicts.append(judged) if judged else notices.append(reason)
    # 4. The exchange rate of the shots family
    exchange: list[ShotsExchange] = []
    for test_set in test_sets:
        rates, why_not = shots_exchange(runs, trained, test_set, n_boot=n_boot, seed=seed)
        exchange += rates
        notices += why_not
    return StudyVerdicts(
        baseline, cheap, margin, _budget([s.steps for s in scores], budget), test_sets,
        scores, tuple(verdicts), tuple(exchange), tuple(notices),
    )  # fmt: skip
