"""Domain gap between image sets in a classifier's feature space: Fréchet distance and KID.

Features are the input of a classifier's last linear layer (the penultimate activations), so
the real-only classifier, always available, gives a feature space without downloading anything.
Distances between real-train and synthetic images mean little alone; the real-train vs
real-test distance, computed the same way on similar image counts, is the yardstick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import sqrtm
from torch import nn

from synth.devices import check_uint8_images, eval_mode
from synth.training.models import to_input  # the same normalisation the classifier trained on

__all__ = [
    "KernelDistance",
    "classifier_features",
    "frechet_distance",
    "kernel_inception_distance",
]

# Added to both covariances' diagonals: with fewer images than feature dimensions a covariance is
# singular and its matrix square root unstable. 1e-6 is far below the feature variances of a
# trained network (order 0.01 to 1), so it moves FD by about 2e-6 * dim at most.
RIDGE = 1e-6


@dataclass(frozen=True)
class KernelDistance:
    """Kernel Inception Distance: unbiased MMD^2 (cubic polynomial kernel) over random subsets."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def _check_pair(feats_a, feats_b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    for name, x in (("feats_a", a), ("feats_b", b)):
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"`{name}` must be n x dim with n >= 2, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"`{name}` must be finite")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"`feats_a` dim {a.shape[1]} != `feats_b` dim {b.shape[1]}")
    return a, b


def frechet_distance(feats_a, feats_b, *, eps: float = RIDGE) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    FD = |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)), with sample covariances (ddof 1)
    plus `eps` on their diagonals. FD is biased upward at small n (about dim / n), so compare
    sets of similar size only.

    Args:
        feats_a: n_a x dim features, n_a >= 2.
        feats_b: n_b x dim features, n_b >= 2.
        eps: Ridge added to both covariances' diagonals, >= 0.

    Returns:
        The distance, >= 0 (0 for identical sets).
    """
    a, b = _check_pair(feats_a, feats_b)
    if eps < 0:
        raise ValueError(f"`eps` must be >= 0, got {eps}")
    ridge = eps * np.eye(a.shape[1])
    cov_a = np.atleast_2d(np.cov(a, rowvar=False)) + ridge
    cov_b = np.atleast_2d(np.cov(b, rowvar=False)) + ridge
    # The product of two PSD matrices has real, non-negative eigenvalues; an imaginary part of
    # its square root is rounding, so the real part is kept.
    root = np.real(sqrtm(cov_a @ cov_b))
    if not np.isfinite(root).all():
        raise ValueError("covariance square root is not finite; raise `eps`")
    diff = a.mean(axis=0) - b.mean(axis=0)
    fd = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root)
    return max(float(fd), 0.0)  # rounding can dip a few ulps below zero for identical sets


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(u, v) = (u.v / dim + 1)^3 (Binkowski et al. 2018)."""
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    m, n = len(x), len(y)
    # Diagonals (an image with itself) are dropped: that is what makes the estimate unbiased.
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(
    feats_a,
    feats_b,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int | Sequence[int] = 0,
) -> KernelDistance:
    """KID: unbiased MMD^2 with a cubic polynomial kernel, mean and std over random subsets.

    Each subset draws min(subset_size, n_a, n_b) rows of each set without replacement. Unlike
    FD the estimate is unbiased at any size, so it can be negative when the sets match.

    Args:
        feats_a: n_a x dim features, n_a >= 2.
        feats_b: n_b x dim features, n_b >= 2.
        subsets: Random subsets to average, >= 1.
        subset_size: Rows per set per subset, >= 2.
        seed: Seed of the subset draws (anything `np.random.default_rng` takes).

    Returns:
        Mean and standard deviation of MMD^2 over the subsets.
    """
    a, b = _check_pair(feats_a, feats_b)
    if subsets < 1:
        raise ValueError(f"`subsets` must be >= 1, got {subsets}")
    if subset_size < 2:
        raise ValueError(f"`subset_size` must be >= 2, got {subset_size}")
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(a), len(b))
    values = [
        _mmd2_unbiased(
            a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return KernelDistance(float(np.mean(values)), float(np.std(values)), subsets, size)


def classifier_features(
    model: nn.Module, images_uint8: torch.Tensor, *, batch_size: int = 256
) -> np.ndarray:
    """Penultimate-layer features: the input of the model's last nn.Linear, per image.

    Works for `StudyCNN` (128-d, after ReLU and dropout, which eval mode disables) and the
    ResNet-18 of `build_model` (512-d pooled features before `fc`).

    Args:
        model: A classifier whose last registered nn.Linear is its output layer.
        images_uint8: uint8 tensor N x 3 x S x S, as stored in the tensor cache.
        batch_size: Images per forward pass; bounds memory, not results.

    Returns:
        float32 array N x dim.
    """
    images = check_uint8_images(images_uint8, batch_size=batch_size)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("`model` has no nn.Linear layer whose input could serve as features")
    captured: list[torch.Tensor] = []
    hook = linears[-1].register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0].detach().float().cpu())
    )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        with eval_mode(model), torch.no_grad():
            for start in range(0, len(images), batch_size):
                model(to_input(images[start : start + batch_size].to(device)))
    finally:
        hook.remove()  # a leftover hook would keep collecting on every later forward pass
    return torch.cat(captured).flatten(1).numpy()
