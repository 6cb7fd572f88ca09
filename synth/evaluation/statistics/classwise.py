"""Paired differences of metrics that are not per-image means: macro averages and per-class rates.

The same two-level draw as `paired` (seeds, then test images shared by every seed and both
recipes). Macro averages and per-class recall / F1 come from confusion counts weighted by the
image draw, so 2000 replicates cost a few batched matrix products; any other metric can be
passed as a callable and is then evaluated once per replicate and seed (slow but general).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from synth.evaluation.statistics.bootstrap import check_bootstrap, resample_counts, two_level
from synth.evaluation.statistics.paired import (
    PairedDifference,
    difference_from_parts,
    paired_difference,
)

__all__ = ["ClassDifference", "paired_metric_difference", "per_class_differences"]

MacroMetric = Literal["recall_macro", "precision_macro", "f1_macro"]


@dataclass(frozen=True)
class ClassDifference:
    """Paired recall and F1 differences of one class; both None when the class has no test image."""

    name: str
    support: int
    recall: PairedDifference | None
    f1: PairedDifference | None
    reason: str | None


def _check_predictions(y_true, baseline_pred, candidate_pred, n_classes: int | None):
    y = np.asarray(y_true)
    base, cand = np.asarray(baseline_pred), np.asarray(candidate_pred)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"`y_true` must be 1-D integer class ids, got {y.dtype} {y.shape}")
    for name, pred in (("baseline_pred", base), ("candidate_pred", cand)):
        if pred.ndim != 2 or pred.shape[1] != len(y) or not np.issubdtype(pred.dtype, np.integer):
            raise ValueError(
                f"`{name}` must be integer n_seeds x {len(y)} predictions, got {pred.dtype} "
                f"{pred.shape}"
            )
    if cand.shape != base.shape:
        raise ValueError(f"`candidate_pred` {cand.shape} must match `baseline_pred` {base.shape}")
    k = int(max(y.max(), base.max(), cand.max())) + 1 if n_classes is None else n_classes
    if min(y.min(), base.min(), cand.min()) < 0 or max(y.max(), base.max(), cand.max()) >= k:
        raise ValueError(f"class ids must lie in [0, {k}) (`n_classes`={n_classes})")
    return y.astype(np.int64), base.astype(np.int64), cand.astype(np.int64), k


def _class_rates(image_w, y, pred, n_classes: int, rate: str, absent: float) -> np.ndarray:
    """Per-class `rate` (recall, precision, f1) of each seed on each image draw: n_boot x S x K.

    Confusion counts are weighted by the image draw, so one batched matrix product replaces
    scikit-learn calls per replicate and seed. A class with no true (or predicted) image in the
    draw scores `absent`.
    """
    eye = np.eye(n_classes)
    pred_1h = eye[pred]  # S x N x K
    hits = pred_1h * (pred == y)[..., None]
    tp = np.matmul(image_w[None], hits)  # S x B x K
    predicted = np.matmul(image_w[None], pred_1h)
    true = (image_w @ eye[y])[None]  # 1 x B x K, the same for every seed
    denominator = {"recall": true, "precision": predicted, "f1": (true + predicted) / 2}[rate]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(denominator > 0, tp / denominator, absent)
    return values.transpose(1, 0, 2)


def _callable_per_seed(metric: Callable, y, pred, image_w) -> np.ndarray:
    """`metric` of each seed on each image draw (n_boot x S), by explicit indices (slow)."""
    out = np.empty((len(image_w), len(pred)))
    for b, counts in enumerate(image_w.astype(np.int64)):
        idx = np.repeat(np.arange(len(y)), counts)
        out[b] = [float(metric(y[idx], p[idx])) for p in pred]
    return out


def _metric_per_seed(metric, image_w, y, pred, n_classes: int) -> np.ndarray:
    """Metric of each seed on each image draw, n_boot x S."""
    if isinstance(metric, str):
        rate = metric.removesuffix("_macro")
        return _class_rates(image_w, y, pred, n_classes, rate, absent=0.0).mean(axis=2)
    return _callable_per_seed(metric, y, pred, image_w)


def paired_metric_difference(
    y_true,
    baseline_pred,
    candidate_pred,
    metric: MacroMetric | Literal["accuracy"] | Callable[[np.ndarray, np.ndarray], float],
    *,
    n_classes: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Paired difference of a metric that is not a per-image mean (macro-F1, macro recall, ...).

    The same two-level draw as `paired_difference`; the metric is computed per resampled seed on
    the resampled test images and averaged over the drawn seeds.

    Args:
        y_true: True class ids of the n_images test images.
        baseline_pred: n_seeds x n_images predicted class ids of the baseline recipe.
        candidate_pred: The same for the candidate (same seeds, same images).
        metric: 'accuracy', 'recall_macro', 'precision_macro' or 'f1_macro' (vectorised; macro
            over all `n_classes` with scikit-learn's zero_division=0), or any callable
            metric(y_true, y_pred) -> float (one Python call per replicate and seed: slow).
        n_classes: Number of classes for the macro averages; default max class id + 1.
        n_boot: Bootstrap replicates, >= 200.
        seed: Seed of the bootstrap draws.
        confidence: Interval coverage, in [0.5, 1).

    Returns:
        The difference with its interval.
    """
    y, base, cand, k = _check_predictions(y_true, baseline_pred, candidate_pred, n_classes)
    if metric == "accuracy":
        return paired_difference(
            base == y, cand == y, n_boot=n_boot, seed=seed, confidence=confidence
        )
    if isinstance(metric, str) and metric not in get_args(MacroMetric):
        raise ValueError(
            f"`metric` must be a callable or one of {get_args(MacroMetric)}, got {metric!r}"
        )
    check_bootstrap(n_boot, confidence)
    seed_w, image_w = resample_counts(np.random.default_rng(seed), *base.shape, n_boot)
    every_image = np.ones((1, len(y)))
    obs_base, obs_cand = (_metric_per_seed(metric, every_image, y, p, k)[0] for p in (base, cand))
    base_per_seed = _metric_per_seed(metric, image_w, y, base, k)
    diff_per_seed = _metric_per_seed(metric, image_w, y, cand, k) - base_per_seed
    diff_parts = two_level(diff_per_seed, seed_w, obs_cand - obs_base)
    base_parts = two_level(base_per_seed, seed_w, obs_base)
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    observed = float((obs_cand - obs_base).mean())
    return difference_from_parts(name, observed, diff_parts, base_parts, base.shape, confidence)


def per_class_differences(
    y_true,
    baseline_pred,
    candidate_pred,
    class_names: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[ClassDifference, ...]:
    """Paired recall and F1 differences per class, for a heatmap and per-class sentences.

    A replicate whose image draw holds no image of a class says nothing about that class and is
    dropped for it (recall and F1 are undefined there), rather than counted as a zero difference.

    Args:
        y_true: True class ids of the n_images test images.
        baseline_pred: n_seeds x n_images predicted class ids of the baseline recipe.
        candidate_pred: The same for the candidate (same seeds, same images).
        class_names: Names in class-id order.
        n_boot: Bootstrap replicates, >= 200.
        seed: Seed of the bootstrap draws (one draw serves every class).
        confidence: Interval coverage, in [0.5, 1).

    Returns:
        One entry per class, in class-id order.
    """
    k = len(class_names)
    y, base, cand, _ = _check_predictions(y_true, baseline_pred, candidate_pred, k)
    check_bootstrap(n_boot, confidence)
    seed_w, image_w = resample_counts(np.random.default_rng(seed), *base.shape, n_boot)
    support = np.bincount(y, minlength=k)
    every_image = np.ones((1, len(y)))
    rates = {}
    for rate in ("recall", "f1"):
        # NaN where a draw lacks the class: nan-aware summaries drop those replicates for it.
        observed = [_class_rates(every_image, y, p, k, rate, np.nan)[0] for p in (base, cand)]
        drawn = [_class_rates(image_w, y, p, k, rate, np.nan) for p in (base, cand)]
        rates[rate] = (observed, drawn)
    out = []
    for c, name in enumerate(class_names):
        if support[c] == 0:
            out.append(ClassDifference(str(name), 0, None, None, "no test image of this class"))
            continue
        diffs = {
            rate: _class_difference(
                f"{rate} ({name})", *data, c, int(support[c]), seed_w, base.shape, confidence
            )
            for rate, data in rates.items()
        }
        out.append(ClassDifference(str(name), int(support[c]), diffs["recall"], diffs["f1"], None))
    return tuple(out)


def _class_difference(
    metric, observed, drawn, c, support, seed_w, shape, confidence
) -> PairedDifference:
    """One class's paired difference from per-class rates of both recipes (observed and drawn).

    The rate's variance rests on the class's own images, so its df is support - 1, not N - 1.
    """
    (obs_b, obs_c), (base_ps, cand_ps) = [o[:, c] for o in observed], [d[..., c] for d in drawn]
    diff_parts = two_level(cand_ps - base_ps, seed_w, obs_c - obs_b)
    base_parts = two_level(base_ps, seed_w, obs_b)
    observed_diff = float((obs_c - obs_b).mean())
    dof = float(max(support - 1, 1))
    return difference_from_parts(
        metric, observed_diff, diff_parts, base_parts, shape, confidence, dof
    )
