"""Per-recipe summaries of evaluation records: mean and confidence interval over seeds.

These are each recipe's own numbers, the detail under the verdict: the interval covers seed
variation only, and one seed gives no interval at all (never "± 0"). Comparisons between
recipes, with intervals over seeds and test images, are in `synth.evaluation.study_verdicts`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from synth.errors import InputError
from synth.evaluation.metrics import METRICS
from synth.evaluation.scoring import EvalRecord

__all__ = ["MetricSummary", "RecipeSummary", "mean_ci", "summarize_recipes"]


@dataclass(frozen=True)
class MetricSummary:
    """One metric over seeds: the mean and the half-width of its 95% interval over seeds.

    `ci` is None with one seed: a single run says nothing about seed-to-seed variation, and a
    half-width of 0 would read as certainty; the mean is then shown alone (tables give the seed
    count beside it).
    """

    mean: float
    ci: float | None

    def __str__(self) -> str:
        if self.ci is None:
            return f"{self.mean:.4f}"
        return f"{self.mean:.4f} ± {self.ci:.4f}"


@dataclass(frozen=True)
class RecipeSummary:
    """A recipe on one test set: how many seeds, and each metric's summary (None: undefined)."""

    recipe: str
    test_set: str
    seeds: int
    metrics: Mapping[str, MetricSummary | None]

    def to_dict(self) -> dict:
        """JSON form (metrics.json): {'recipe', 'test_set', 'seeds', 'metrics': {m: {mean, ci}}}.

        `ci` is null with one seed.
        """
        metrics = {
            m: None if s is None else {"mean": s.mean, "ci": s.ci} for m, s in self.metrics.items()
        }
        return {
            "recipe": self.recipe,
            "test_set": self.test_set,
            "seeds": self.seeds,
            "metrics": metrics,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> RecipeSummary:
        """The inverse of `to_dict` (metrics.json as read back by dataset versions)."""
        metrics = {
            m: None if s is None else MetricSummary(float(s["mean"]), _ci(s.get("ci")))
            for m, s in data["metrics"].items()
        }
        return cls(str(data["recipe"]), str(data["test_set"]), int(data["seeds"]), metrics)

    def table_row(self) -> dict[str, object]:
        """A flat row for tables: recipe, seeds, then '<mean> ± <ci>' per metric."""
        row: dict[str, object] = {"recipe": self.recipe, "seeds": self.seeds}
        for metric, summary in self.metrics.items():
            row[metric] = "n/a" if summary is None else str(summary)
        return row


def _ci(value) -> float | None:
    return None if value is None else float(value)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and Student-t confidence half-width of `values` (half-width 0 for one value).

    Args:
        values: one score per seed.
        confidence: two-sided confidence level in (0, 1).

    Returns:
        (mean, half_width): the interval is mean +- half_width.
    """
    if not values:
        raise InputError("`values` is empty: need at least one value")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"`confidence` must be in (0, 1), got {confidence}")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, 0.0
    from scipy.stats import t  # slow import; only callers of mean_ci pay for it

    half = float(t.ppf((1 + confidence) / 2, len(values) - 1)) * statistics.stdev(values)
    return mean, half / math.sqrt(len(values))


def summarize_recipes(records: Sequence[EvalRecord], test_set: str) -> list[RecipeSummary]:
    """Per recipe, each metric's mean and 95% CI over seeds (ci None with one seed)."""
    summaries = []
    for recipe in dict.fromkeys(r.recipe for r in records if r.test_set == test_set):
        mine = [r for r in records if r.recipe == recipe and r.test_set == test_set]
        metrics: dict[str, MetricSummary | None] = {}
        for metric in METRICS:
            values = [getattr(r.metrics, metric) for r in mine]
            if any(v is None or math.isnan(v) for v in values):
                metrics[metric] = None
                continue
            mean, half = mean_ci(values)
            ci = round(half, 4) if len(values) > 1 else None
            metrics[metric] = MetricSummary(round(mean, 4), ci)
        summaries.append(RecipeSummary(recipe, test_set, len(mine), metrics))
    return summaries
