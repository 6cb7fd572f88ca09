"""Per-recipe summaries of evaluation records: mean and confidence interval over seeds."""

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
    """One metric over seeds: the mean and the half-width of its 95% interval."""

    mean: float
    ci: float

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.ci:.4f}"


@dataclass(frozen=True)
class RecipeSummary:
    """A recipe on one test set: how many seeds, and each metric's summary (None: undefined)."""

    recipe: str
    test_set: str
    seeds: int
    metrics: Mapping[str, MetricSummary | None]

    def to_dict(self) -> dict:
        """JSON form (metrics.json): {'recipe', 'test_set', 'seeds', 'metrics': {m: {mean, ci}}}."""
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
            m: None if s is None else MetricSummary(float(s["mean"]), float(s["ci"]))
            for m, s in data["metrics"].items()
        }
        return cls(str(data["recipe"]), str(data["test_set"]), int(data["seeds"]), metrics)

    def table_row(self) -> dict[str, object]:
        """A flat row for tables: recipe, seeds, then '<mean> ± <ci>' per metric."""
        row: dict[str, object] = {"recipe": self.recipe, "seeds": self.seeds}
        for metric, summary in self.metrics.items():
            row[metric] = "n/a" if summary is None else str(summary)
        return row


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
    """The study's comparison: per recipe, each metric's mean and 95% CI over seeds."""
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
            metrics[metric] = MetricSummary(round(mean, 4), round(half, 4))
        summaries.append(RecipeSummary(recipe, test_set, len(mine), metrics))
    return summaries
