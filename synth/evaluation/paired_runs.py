"""Evaluation records arranged for paired statistics: predictions by recipe, test set and seed.

Paired comparisons need both recipes' predictions on the same seeds and the same test images in
the same order; this is where records are lined up, and where a pair that cannot be lined up
says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from synth.evaluation.scoring import EvalRecord

__all__ = ["PairedRuns"]


class PairedRuns:
    """Every record of a study, by (recipe, test set) and seed."""

    def __init__(self, records: Iterable[EvalRecord]):
        self.by_key: dict[tuple[str, str], dict[int, EvalRecord]] = {}
        for r in records:
            self.by_key.setdefault((r.recipe, r.test_set), {})[r.seed] = r

    def has(self, recipe: str, test_set: str) -> bool:
        """Whether `recipe` was scored on `test_set`."""
        return (recipe, test_set) in self.by_key

    def seeds(self, recipes: Sequence[str], test_set: str) -> list[int]:
        """Seeds every one of `recipes` was scored with on `test_set`, sorted."""
        return sorted(set.intersection(*(set(self.by_key[(r, test_set)]) for r in recipes)))

    def predictions(self, recipe: str, test_set: str, seeds: Sequence[int]) -> np.ndarray:
        """Predicted class ids, seeds x test images."""
        return np.array([self.by_key[(recipe, test_set)][s].predictions for s in seeds])

    def one(self, recipe: str, test_set: str) -> EvalRecord:
        """The record of `recipe`'s first seed on `test_set` (labels, counts, class names)."""
        runs = self.by_key[(recipe, test_set)]
        return runs[min(runs)]

    def steps(self, recipe: str, test_set: str) -> int:
        """Optimiser steps per model of `recipe`: the largest over its seeds (0: not recorded)."""
        return max(r.steps for r in self.by_key[(recipe, test_set)].values())

    def paired(self, baseline: str, candidate: str, test_set: str):
        """(labels, baseline predictions, candidate predictions) on the shared seeds, as
        (arrays, None); or (None, the reason they cannot be paired)."""
        seeds = self.seeds([baseline, candidate], test_set)
        if not seeds:
            return None, f"{candidate} and {baseline} share no seed on {test_set}"
        labels = {self.one(r, test_set).labels for r in (baseline, candidate)}
        if len(labels) != 1 or not next(iter(labels)):
            return None, (
                f"{candidate} vs {baseline} on {test_set}: no per-image predictions in the same "
                "test-image order to pair"
            )
        y = np.array(next(iter(labels)))
        base, cand = (self.predictions(r, test_set, seeds) for r in (baseline, candidate))
        return (y, base, cand), None
