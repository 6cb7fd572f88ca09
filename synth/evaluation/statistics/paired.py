"""Paired comparisons of two training recipes: bootstrap intervals and detectable differences.

Every recipe is trained with the same seeds and scored on the same test images, so a recipe is
judged by its *paired* difference from a baseline: per seed and per test image, candidate minus
baseline. The interval comes from a two-level bootstrap that resamples seeds, then test images,
and applies the same draw to both recipes. Test images are crossed with seeds (every seed sees
every image), so one image draw is shared by all seeds of a replicate: drawing images afresh per
seed would average the image effect away and give intervals that are too narrow.

Two corrections keep the coverage near nominal with few seeds (checked by simulation in
tests/test_statistics.py): the seed and image parts of each replicate are rescaled to unbiased
variance components, and the replicates are widened by t / z with Satterthwaite degrees of
freedom, because 3 seeds estimate the seed-to-seed variance from 2 df.

An interval has zero width only when every seed and test image gives the same difference (for
instance identical predictions). Otherwise the replicates spread: a single differing image is
left out of about 37% of image draws (and with its seed, up to about 60% of replicates), far
from the 95% of replicates on one value that a zero-width 95% interval needs. The method and
its assumptions are written up in docs/STATISTICS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.stats import norm
from scipy.stats import t as t_dist

__all__ = ["PairedDifference", "minimum_detectable_difference", "paired_difference"]

POWER = 0.8  # power of the smallest detectable difference, the usual design convention
MIN_BOOT = 200  # fewer replicates make the 2.5% / 97.5% percentiles rest on a handful of values
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


def _check_bootstrap(n_boot: int, confidence: float) -> None:
    if n_boot < MIN_BOOT:
        raise ValueError(f"`n_boot` must be >= {MIN_BOOT}, got {n_boot}")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"`confidence` must be in [0.5, 1), got {confidence}")


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


def _resample_counts(rng: np.random.Generator, n_seeds: int, n_images: int, n_boot: int):
    """How often each seed and each test image is drawn in each replicate (n_boot x S, n_boot x N).

    One image draw per replicate serves every seed and both recipes: images are crossed with
    seeds, and sharing the draw is what keeps the comparison paired.
    """
    seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
    images = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot)
    return seeds.astype(np.float64), images.astype(np.float64)


class _Parts(NamedTuple):
    """Replicate deviations from the observed value, split by source (n_boot [x K] each)."""

    image: np.ndarray
    seed: np.ndarray
    seed_dof: np.ndarray  # degrees of freedom behind the seed part's variance


def _two_level(per_seed: np.ndarray, seed_w: np.ndarray, observed: np.ndarray) -> _Parts:
    """Split replicates of a seed average into an image part and a seed part.

    With d_si = effect + a_i (image) + b_s (seed) + e_si, the mean's variance is
    var(a)/N + var(b)/S + var(e)/(SN). The seed part carries var(b)/S + var(e)/(SN): each seed's
    mean over the test images, its own image noise included, is one draw, and the between-seed
    variance of the observed per-seed values estimates it without bias (the seed draw alone
    would give only (S - 1) / S of it) from S - 1 df. It is floored at the var(e)/(SN) it must
    contain (estimated from many more df), so seeds that happen to agree cannot shrink the
    interval to nothing. The image part, the mean over all seeds on the image draw, carries
    var(a)/N + var(e)/(SN), so its share of var(e)/(SN), measured by how much a seed's
    deviation from the all-seed mean moves between image draws, is removed.

    Args:
        per_seed: Metric of each seed on each replicate's image draw, n_boot x S (x K).
        seed_w: How often each seed is drawn per replicate, n_boot x S.
        observed: Metric of each seed on all test images, S (x K).

    Returns:
        The image part and the seed part, deviations from the observed value per replicate.
    """
    n_seeds = per_seed.shape[1]
    image_part = per_seed.mean(axis=1) - observed.mean(axis=0)
    if n_seeds == 1:
        return _Parts(image_part, np.zeros_like(image_part), np.zeros(image_part.shape[1:]))
    w = seed_w.reshape(seed_w.shape + (1,) * (per_seed.ndim - 2))
    drawn = (w * per_seed).sum(axis=1) / n_seeds - per_seed.mean(axis=1)
    own_noise = np.nanvar(per_seed - per_seed.mean(axis=1, keepdims=True), axis=0, ddof=1)
    own_noise = own_noise.mean(axis=0) / (n_seeds - 1)  # var(e)/(SN), from S-1 deviations
    image_var = np.nanvar(image_part, axis=0)
    between = np.var(observed, axis=0, ddof=1) / n_seeds
    seed_dof = np.where(between >= own_noise, n_seeds - 1, np.inf)
    return _Parts(
        _rescaled(image_part, image_var - own_noise),
        _rescaled(drawn, np.maximum(between, own_noise)),
        seed_dof,
    )


def _rescaled(part: np.ndarray, target_var) -> np.ndarray:
    """`part` scaled (per column) to variance max(target_var, 0); zero where it has none."""
    spread = np.nanvar(part, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(spread > 0, np.sqrt(np.maximum(target_var, 0.0) / spread), 0.0)
    return part * scale


def _image_dof(per_image: np.ndarray) -> float:
    """Degrees of freedom behind a variance estimated from N per-image values.

    N - 1 for normal data, fewer for heavy tails: paired 1/0 differences are mostly 0 with a few
    +-1 (the discordant images), so their variance really rests on those few. From
    var(s^2) = sigma^4 (2 / (N - 1) + excess kurtosis / N), df = 2 sigma^4 / var(s^2).
    """
    n = len(per_image)
    centred = per_image - per_image.mean()
    m2 = float(np.mean(centred**2))
    if n < 3 or m2 == 0:
        return float(max(n - 1, 1))
    excess = float(np.mean(centred**4)) / m2**2 - 3
    return float(np.clip(2 / (2 / (n - 1) + excess / n), 1, n - 1))


def _replicates(parts: _Parts, observed: float, image_dof: float, confidence: float) -> np.ndarray:
    """Replicates `observed` + image part + seed part, widened by t / z (Satterthwaite df).

    A percentile bootstrap behaves like a z interval; with 3 seeds and mostly seed-to-seed
    variance the right quantile is a t with about 2 df (4.3 instead of 1.96 at 95%). The seed
    part's variance rests on `parts.seed_dof` df, the image part's on `image_dof`.
    """
    v_image, v_seed = float(np.nanvar(parts.image)), float(np.nanvar(parts.seed))
    pairs = ((v_seed, float(parts.seed_dof)), (v_image, image_dof))
    spread_per_dof = sum(v**2 / df for v, df in pairs if v > 0)
    stretch = 1.0
    if spread_per_dof > 0:  # 0 when all variance rests on (practically) infinite df: stay z
        q = 1 - (1 - confidence) / 2
        stretch = t_dist.ppf(q, (v_image + v_seed) ** 2 / spread_per_dof) / norm.ppf(q)
    return observed + stretch * (parts.image + parts.seed)


def _summarise(
    metric: str,
    observed: float,
    diff_parts: _Parts,
    base_parts: _Parts,
    shape: tuple[int, int],
    confidence: float,
    image_dof: float | None = None,
) -> PairedDifference:
    """Percentile interval, spread and detectable difference from the replicates' parts.

    `image_dof` is the df behind the image part's variance; N - 1 when not given.
    """
    (n_seeds, n_images), n_boot = shape, len(diff_parts.image)
    dof = float(max(n_images - 1, 1)) if image_dof is None else image_dof
    reps = _replicates(diff_parts, observed, dof, confidence)
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
        base_reps = _replicates(base_parts, 0.0, dof, confidence)
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
    _check_bootstrap(n_boot, confidence)
    seed_w, image_w = _resample_counts(np.random.default_rng(seed), *base.shape, n_boot)
    # Per-seed means on each image draw: one matrix product, no Python loop over replicates.
    diff, n_images = cand - base, base.shape[1]
    diff_parts = _two_level(image_w @ diff.T / n_images, seed_w, diff.mean(axis=1))
    base_parts = _two_level(image_w @ base.T / n_images, seed_w, base.mean(axis=1))
    dof = _image_dof(diff.mean(axis=0))
    return _summarise(
        metric, float(diff.mean()), diff_parts, base_parts, base.shape, confidence, dof
    )
