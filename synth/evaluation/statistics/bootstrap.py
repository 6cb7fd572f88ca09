"""The paired two-level bootstrap shared by every comparison in this package.

Replicates resample seeds, then test images, with one image draw per replicate for every seed
and both recipes (`resample_counts`); `two_level` splits a replicate's deviation into an image
part and a seed part, and `replicates` puts them back together, widened for few seeds.

Two corrections keep the coverage near nominal with few seeds (checked by simulation in
tests/test_statistics.py): the seed and image parts of each replicate are rescaled to unbiased
variance components, and the replicates are widened by t / z with Satterthwaite degrees of
freedom, because 3 seeds estimate the seed-to-seed variance from 2 df.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import norm
from scipy.stats import t as t_dist

__all__ = [
    "MIN_BOOT",
    "Parts",
    "check_bootstrap",
    "dof_of_images",
    "replicates",
    "resample_counts",
    "two_level",
]

MIN_BOOT = 200  # fewer replicates make the 2.5% / 97.5% percentiles rest on a handful of values


def check_bootstrap(n_boot: int, confidence: float) -> None:
    if n_boot < MIN_BOOT:
        raise ValueError(f"`n_boot` must be >= {MIN_BOOT}, got {n_boot}")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"`confidence` must be in [0.5, 1), got {confidence}")


def resample_counts(rng: np.random.Generator, n_seeds: int, n_images: int, n_boot: int):
    """How often each seed and each test image is drawn in each replicate (n_boot x S, n_boot x N).

    One image draw per replicate serves every seed and both recipes: images are crossed with
    seeds, and sharing the draw is what keeps the comparison paired.
    """
    seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot)
    images = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot)
    return seeds.astype(np.float64), images.astype(np.float64)


class Parts(NamedTuple):
    """Replicate deviations from the observed value, split by source (n_boot [x K] each)."""

    image: np.ndarray
    seed: np.ndarray
    seed_dof: np.ndarray  # degrees of freedom behind the seed part's variance


def two_level(per_seed: np.ndarray, seed_w: np.ndarray, observed: np.ndarray) -> Parts:
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
        return Parts(image_part, np.zeros_like(image_part), np.zeros(image_part.shape[1:]))
    w = seed_w.reshape(seed_w.shape + (1,) * (per_seed.ndim - 2))
    drawn = (w * per_seed).sum(axis=1) / n_seeds - per_seed.mean(axis=1)
    own_noise = np.nanvar(per_seed - per_seed.mean(axis=1, keepdims=True), axis=0, ddof=1)
    own_noise = own_noise.mean(axis=0) / (n_seeds - 1)  # var(e)/(SN), from S-1 deviations
    image_var = np.nanvar(image_part, axis=0)
    between = np.var(observed, axis=0, ddof=1) / n_seeds
    seed_dof = np.where(between >= own_noise, n_seeds - 1, np.inf)
    return Parts(
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


def dof_of_images(per_image: np.ndarray) -> float:
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


def replicates(parts: Parts, observed: float, image_dof: float, confidence: float) -> np.ndarray:
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
