"""Paired statistics of training recipes: intervals, verdicts, per-class differences, exchange rate.

Every recipe is trained with the same seeds and scored on the same test images, so each is judged
by its paired difference from a baseline, with an interval from a two-level bootstrap (seeds,
then test images). The method and its assumptions are in docs/STATISTICS.md.

Modules: `paired` (the bootstrap and the smallest detectable difference), `classwise` (macro and
per-class metrics), `exchange` (synthetic images' worth in real images), `verdicts` (labels and
sentences). Import from this package; the layout behind it may change.
"""

from __future__ import annotations

from synth.evaluation.statistics.classwise import (
    ClassDifference,
    paired_metric_difference,
    per_class_differences,
)
from synth.evaluation.statistics.exchange import ExchangeRate, exchange_rate
from synth.evaluation.statistics.paired import (
    PairedDifference,
    minimum_detectable_difference,
    paired_difference,
)
from synth.evaluation.statistics.verdicts import LABELS, Verdict, class_summary, verdict

__all__ = [
    "LABELS",
    "ClassDifference",
    "ExchangeRate",
    "PairedDifference",
    "Verdict",
    "class_summary",
    "exchange_rate",
    "minimum_detectable_difference",
    "paired_difference",
    "paired_metric_difference",
    "per_class_differences",
    "verdict",
]
