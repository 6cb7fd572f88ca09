"""The exchange rate of synthetic for real images: "N synthetic images were worth about M real".

A `shots` family trains real-only recipes on several real-image counts n and a mixed recipe on
one of those counts plus N synthetic images, all with the same seeds and scored on the same test
images. Accuracy against log(n) for real-only is made monotone (pool-adjacent-violators) and
interpolated linearly; inverting it at the mixed recipe's accuracy gives the real count that
reaches the same accuracy, and M is that count minus the real images the mixed recipe used.
Intervals come from the same two-level paired bootstrap as `paired`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from synth.evaluation.statistics.bootstrap import check_bootstrap, resample_counts, two_level
from synth.evaluation.statistics.paired import paired_difference

__all__ = ["ExchangeRate", "exchange_rate"]


@dataclass(frozen=True)
class ExchangeRate:
    """What N synthetic images were worth in real images, with intervals.

    Attributes:
        metric: Name of the metric on the curve, e.g. 'accuracy'.
        synthetic_count: Synthetic images added in the mixed recipe (N).
        real_count: Real images the mixed recipe used.
        equivalent_real: Real images that reach the mixed recipe's metric on the real-only curve.
        worth: equivalent_real - real_count (M); negative when the synthetic images cost accuracy.
        worth_low: Lower end of the interval of M (None with no spread to resample).
        worth_high: Upper end of the interval of M.
        gain_per_1000: (mixed - real-only at the same real count) / N * 1000, in metric units.
        gain_low: Lower end of the gain's paired interval, per 1,000 synthetic images.
        gain_high: Upper end of it.
        clipped: 'above' when the mixed recipe beat every real-only count (M is a lower bound),
            'below' when it fell under the smallest (M is an upper bound), else None.
        clipped_share: Share of bootstrap replicates that fell outside the curve.
        confidence: Coverage of the intervals.
        n_seeds: Seeds per recipe.
        n_images: Test images (1 when only per-seed scores were given).
        notice: What the intervals leave out; None when nothing.
        sentence: The result in plain words.
    """

    metric: str
    synthetic_count: int
    real_count: int
    equivalent_real: float
    worth: float
    worth_low: float | None
    worth_high: float | None
    gain_per_1000: float
    gain_low: float
    gain_high: float
    clipped: str | None
    clipped_share: float
    confidence: float
    n_seeds: int
    n_images: int
    notice: str | None
    sentence: str


def _isotonic(values: np.ndarray) -> np.ndarray:
    """Closest non-decreasing sequence in least squares (pool adjacent violators, equal weights)."""
    blocks: list[list[float]] = []  # [sum, count] of each pooled block
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return np.concatenate([np.full(int(c), s / c) for s, c in blocks])


def _equivalent(log_counts: np.ndarray, curve: np.ndarray, value: float):
    """Real count at which the monotone `curve` first reaches `value`, and how it was clipped.

    Ends and exact levels return the level's own count (rounded back from its log), so a recipe
    at the curve's end is worth exactly that many images, not exp(log(n)) = n + 1e-14.
    """
    levels = np.rint(np.exp(log_counts))  # counts are whole images
    if value > curve[-1]:
        return float(levels[-1]), "above"
    if value < curve[0]:
        return float(levels[0]), "below"
    j = int(np.argmax(curve >= value))  # first level reaching value, so curve[j - 1] < value
    if j == 0 or curve[j] == value:
        return float(levels[j]), None
    frac = (value - curve[j - 1]) / (curve[j] - curve[j - 1])
    return float(np.exp(log_counts[j - 1] + frac * (log_counts[j] - log_counts[j - 1]))), None


def _check_inputs(real_counts, real_scores, mixed_real_count, synthetic_count, mixed_scores):
    counts = np.asarray(real_counts, dtype=np.float64)
    real = np.asarray(real_scores, dtype=np.float64)
    mixed = np.asarray(mixed_scores, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2 or (counts <= 0).any() or (np.diff(counts) <= 0).any():
        raise ValueError(f"`real_counts` must be >= 2 increasing positive counts, got {counts}")
    if real.ndim == 2:  # per-seed scores only: one "image" per seed, no test-image resampling
        real, mixed = real[..., None], mixed[..., None]
    if real.ndim != 3 or real.shape[0] != len(counts):
        raise ValueError(
            f"`real_scores` must be {len(counts)} x n_seeds (x n_images), got {real.shape}"
        )
    if mixed.shape != real.shape[1:]:
        raise ValueError(f"`mixed_scores` must have shape {real.shape[1:]}, got {mixed.shape}")
    if mixed_real_count not in counts:
        raise ValueError(f"`mixed_real_count` {mixed_real_count} must be one of `real_counts`")
    if synthetic_count <= 0:
        raise ValueError(f"`synthetic_count` must be > 0, got {synthetic_count}")
    return counts, real, mixed


def _worth_sentence(rate: ExchangeRate, smallest: float, largest: float) -> str:
    syn, used, worth = f"{rate.synthetic_count:,}", f"{rate.real_count:,}", rate.worth
    if rate.clipped == "above":
        return (
            f"{syn} synthetic images were worth more than {worth:,.0f} real images: with {used} "
            f"real images they beat real-only with {largest:,.0f}, the most tried"
        )
    if rate.clipped == "below":
        head = (
            f"{syn} synthetic images cost accuracy"
            if worth <= 0
            else f"{syn} synthetic images were worth less than {worth:,.0f} real images"
        )
        return (
            f"{head}: with {used} real images they stayed below real-only with "
            f"{smallest:,.0f}, the fewest tried"
        )
    text = f"{syn} synthetic images were worth about {worth:,.0f} real images"
    if rate.worth_low is not None:
        text += f" ({rate.confidence:.0%} interval {rate.worth_low:,.0f} to {rate.worth_high:,.0f})"
    return text + f" on top of {used} real images" + (" (they cost accuracy)" if worth < 0 else "")


def exchange_rate(
    real_counts: Sequence[int],
    real_scores,
    mixed_real_count: int,
    synthetic_count: int,
    mixed_scores,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    metric: str = "accuracy",
) -> ExchangeRate:
    """Estimate how many real images `synthetic_count` synthetic images were worth.

    Args:
        real_counts: Real training images of each real-only `shots` recipe, increasing.
        real_scores: Per-image scores (e.g. 1/0 correctness) of those recipes, levels x n_seeds x
            n_images, or per-seed metrics, levels x n_seeds (then test-image sampling is left
            out of the intervals). Same seeds and test images for every recipe.
        mixed_real_count: Real images of the mixed recipe; one of `real_counts`.
        synthetic_count: Synthetic images the mixed recipe added.
        mixed_scores: The mixed recipe's scores, n_seeds x n_images (or n_seeds).
        n_boot: Bootstrap replicates, >= 200.
        seed: Seed of the bootstrap draws.
        confidence: Interval coverage, in [0.5, 1).
        metric: Name of the metric, for the sentence.

    Returns:
        The exchange rate, its marginal gain per 1,000 synthetic images, and a sentence.
    """
    counts, real, mixed = _check_inputs(
        real_counts, real_scores, mixed_real_count, synthetic_count, mixed_scores
    )
    check_bootstrap(n_boot, confidence)
    (_, n_seeds, n_images), log_counts = real.shape, np.log(counts)
    used = int(np.flatnonzero(counts == mixed_real_count)[0])

    # 1. Point estimate on the observed means
    curve = _isotonic(real.mean(axis=(1, 2)))
    equivalent, clipped = _equivalent(log_counts, curve, float(mixed.mean()))

    # 2. Interval of M: every recipe on the same seed and image draws, refit, invert
    worth_reps, clipped_share = _worth_replicates(log_counts, real, mixed, n_boot, seed)
    worth_reps -= mixed_real_count
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(worth_reps, [tail, 1 - tail]))

    # 3. Marginal gain: the paired difference with real-only at the same real count, per 1,000
    gain = paired_difference(real[used], mixed, n_boot=n_boot, seed=seed, confidence=confidence)
    per_1000 = 1000.0 / synthetic_count
    notices = [gain.notice] if gain.notice else []
    if n_images == 1:
        notices.append("per-seed scores only: test-image sampling is not in the intervals")
    if clipped_share > 0:
        notices.append(f"{clipped_share:.0%} of replicates fell outside the real-only curve")
    rate = ExchangeRate(
        metric, int(synthetic_count), int(mixed_real_count), equivalent,
        equivalent - mixed_real_count, low if high > low else None, high if high > low else None,
        gain.mean * per_1000, gain.low * per_1000, gain.high * per_1000, clipped, clipped_share,
        confidence, n_seeds, n_images, "; ".join(notices) or None, "",
    )  # fmt: skip
    return replace(rate, sentence=_sentence(rate, counts, gain.degenerate))


def _worth_replicates(log_counts, real, mixed, n_boot: int, seed: int):
    """Equivalent real counts over bootstrap replicates, and the share clipped at the curve's ends.

    All recipes share each replicate's seed and image draw (they share seeds and test images),
    with the same variance-corrected parts as the paired differences.
    """
    _, n_seeds, n_images = real.shape
    seed_w, image_w = resample_counts(np.random.default_rng(seed), n_seeds, n_images, n_boot)

    def replicate(scores: np.ndarray) -> np.ndarray:
        parts = two_level(image_w @ scores.T / n_images, seed_w, scores.mean(axis=1))
        return scores.mean() + parts.image + parts.seed

    curves = np.stack([replicate(level) for level in real], axis=1)  # n_boot x levels
    inverted = [
        _equivalent(log_counts, _isotonic(c), v)
        for c, v in zip(curves, replicate(mixed), strict=True)
    ]
    counts = np.array([count for count, _ in inverted])
    return counts, float(np.mean([clip is not None for _, clip in inverted]))


def _sentence(rate: ExchangeRate, counts: np.ndarray, gain_degenerate: bool) -> str:
    interval = (
        "no spread to form an interval"
        if gain_degenerate
        else f"{rate.confidence:.0%} interval {rate.gain_low:+.3f} to {rate.gain_high:+.3f}"
    )
    return (
        f"{_worth_sentence(rate, counts[0], counts[-1])}; marginal gain "
        f"{rate.gain_per_1000:+.3f} {rate.metric} per 1,000 synthetic images ({interval})"
        + (f"; {rate.notice}" if rate.notice else "")
        + "."
    )
