"""Paired comparisons of two training recipes: bootstrap intervals and detectable differences.

Every recipe is trained with the same seeds and scored on the same test images, so a recipe is
judged by its *paired* difference from a baseline: per seed and per test image, candidate minus
baseline. The interval comes from a two-level bootstrap that resamples seeds, then test images,
and applies the same draw to both recipes. Test images are crossed with seeds (every seed sees
every image), so one image draw is shared by all seeds of a replicate: drawing images afresh per
seed would average the image effect away and give intervals that are too narrow.

The bootstrap itself, and the corrections that keep its coverage near nominal with few seeds,
are in `bootstrap.py`.

An interval has zero width only when every seed and test image gives the same difference (for
instance identical predictions). Otherwise the replicates spread: a single differing image is
left out of about 37% of image draws (and with its seed, up to about 60% of replicates), far
from the 95% of replicates on one value that a zero-width 95% interval needs. The method and
its assumptions are written up in docs/STATISTICS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from synth.evaluation.statistics.bootstrap import (
    Parts,
    check_bootstrap,
    dof_of_images,
    replicates,
    resample_counts,
    two_level,
)

__all__ = [
    "PairedDifference",
    "difference_from_parts",
    "minimum_detectable_difference",
    "paired_difference",
]

POWER = 0.8  # power of the smallest detectable difference, the usual design convention
ONE_SEED = (
    "one seed: the interval covers test-image sampling only, not training randomness, "
    "so the true uncertainty is larger by an unknown amount"
)
NO_SPREAD = (
    "every seed and test image gave the same difference (e.g. identical predictions), so the "
    "interval is a single point"
)


@dataclass(frozen=True)
class PairedDifference:
    """Candidate minus baseline on one metric, with a two-level paired bootstrap interval.

    Attributes:
        metric: Name of the metric, e.g. 'accuracy'.
        mean: Observed difference, candidate minus baseline, averaged over seeds.
        low: Lower end of the percentile bootstrap interval.
        high: Upper end; equals `low` only when the differences have no spread at all.
        confidence: Coverage the interval aims for, e.g. 0.95.
        se: Standard deviation of the (corrected, widened) replicates: the standard error the
            interval implies.
        mde: Smallest difference detectable at 80% power and alpha = 1 - confidence; None when
            neither recipe varies over seeds and images, so no spread can be estimated.
        n_seeds: Seeds (training runs per recipe) behind each recipe.
        n_images: Test images, the same for both recipes.
        n_boot: Bootstrap replicates.
        method: How the interval was computed, in words.
        notice: What the interval leaves out or why it is a point; None when nothing.
    """

    metric: str
    mean: float
    low: float
    high: float
    confidence: float
    se: float
    mde: float | None
    n_seeds: int
    n_images: int
    n_boot: int
    method: str
    notice: str | None

    @property
    def one_seed(self) -> bool:
        """True when the interval comes from test images alone."""
        return self.n_seeds == 1

    @property
    def degenerate(self) -> bool:
        """True when the interval is a single point (no spread anywhere in the data)."""
        return self.low == self.high


def minimum_detectable_difference(
    standard_error: float, *, alpha: float = 0.05, power: float = POWER
) -> float:
    """Smallest true difference a two-sided test at `alpha` detects with probability `power`.

    MDE ~ (z_{1-alpha/2} + z_{power}) * SE, i.e. about 2.8 SE at alpha 0.05 and power 0.8 (normal
    approximation of the difference's sampling distribution).

    Args:
        standard_error: Standard error of the difference (e.g. `PairedDifference.se`), >= 0.
        alpha: Two-sided significance level, in (0, 1).
        power: Probability of detecting a true difference of that size, in (0, 1).

    Returns:
        The detectable difference, in the metric's units.
    """
    if not standard_error >= 0:
        raise ValueError(f"`standard_error` must be >= 0, got {standard_error}")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"`power` must be in (0, 1), got {power}")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * standard_error)


def _check_scores(baseline, candidate) -> tuple[np.ndarray, np.ndarray]:
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if base.ndim != 2 or base.size == 0:
        raise ValueError(f"`baseline_correct` must be n_seeds x n_images, got shape {base.shape}")
    if cand.shape != base.shape:
        raise ValueError(
            f"`candidate_correct` must match `baseline_correct` {base.shape} (same seeds, same "
            f"test images), got shape {cand.shape}"
        )
    if not (np.isfinite(base).all() and np.isfinite(cand).all()):
        raise ValueError("`baseline_correct` and `candidate_correct` must be finite")
    return base, cand


def difference_from_parts(
    metric: str,
    observed: float,
    diff_parts: Parts,
    base_parts: Parts,
    shape: tuple[int, int],
    confidence: float,
    image_dof: float | None = None,
) -> PairedDifference:
    """Percentile interval, spread and detectable difference from the replicates' parts.

    `image_dof` is the df behind the image part's variance; N - 1 when not given.
    """
    (n_seeds, n_images), n_boot = shape, len(diff_parts.image)
    dof = float(max(n_images - 1, 1)) if image_dof is None else image_dof
    reps = replicates(diff_parts, observed, dof, confidence)
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.nanquantile(reps, [tail, 1 - tail]))
    se = float(np.nanstd(reps, ddof=1))
    notices = [ONE_SEED] if n_seeds == 1 else []
    # Sums of equal floats wobble in the last bit; that is no spread, and must not read as one.
    if np.nanmax(reps) - np.nanmin(reps) <= 1e-12 * max(1.0, abs(observed)):
        low = high = observed
        se = 0.0
        notices.append(NO_SPREAD)
    if se > 0:
        mde = minimum_detectable_difference(se, alpha=1 - confidence)
    else:
        # No paired spread: fall back on the baseline's own spread, as if the two recipes were
        # independent (sqrt 2 for the difference of two such estimates).
        base_reps = replicates(base_parts, 0.0, dof, confidence)
        base_se = float(np.nanstd(base_reps, ddof=1)) * np.sqrt(2)
        mde = minimum_detectable_difference(base_se, alpha=1 - confidence) if base_se > 0 else None
    method = (
        f"paired two-level percentile bootstrap ({n_boot} replicates): "
        + ("test images resampled" if n_seeds == 1 else "seeds, then test images, resampled")
        + " with replacement, the same draw for both recipes"
        + ("" if n_seeds == 1 else "; variance parts corrected, t-widened for few seeds")
    )
    return PairedDifference(
        metric, float(observed), low, high, confidence, se, mde, n_seeds, n_images, n_boot,
        method, "; ".join(notices) or None,
    )  # fmt: skip


def paired_difference(
    baseline_correct,
    candidate_correct,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    metric: str = "accuracy",
) -> PairedDifference:
    """Paired difference of a per-image score (e.g. 1/0 correctness), candidate minus baseline.

    Args:
        baseline_correct: n_seeds x n_images per-image scores of the baseline recipe; the
            metric is their mean (accuracy for 1/0 correctness).
        candidate_correct: The same for the candidate, same seeds and same test images in the
            same order.
        n_boot: Bootstrap replicates, >= 200.
        seed: Seed of the bootstrap draws.
        confidence: Interval coverage, in [0.5, 1).
        metric: Name recorded in the result.

    Returns:
        The difference with its interval; with one seed the interval comes from test images alone
        and `notice` says so.
    """
    base, cand = _check_scores(baseline_correct, candidate_correct)
    check_bootstrap(n_boot, confidence)
    seed_w, image_w = resample_counts(np.random.default_rng(seed), *base.shape, n_boot)
    # Per-seed means on each image draw: one matrix product, no Python loop over replicates.
    diff, n_images = cand - base, base.shape[1]
    diff_parts = two_level(image_w @ diff.T / n_images, seed_w, diff.mean(axis=1))
    base_parts = two_level(image_w @ base.T / n_images, seed_w, base.mean(axis=1))
    dof = dof_of_images(diff.mean(axis=0))
    return difference_from_parts(
        metric, float(diff.mean()), diff_parts, base_parts, base.shape, confidence, dof
    )
