"""Training-time augmentations of uint8 image batches, seeded by the caller's torch.Generator.

Two kinds: `flip_shift` (`TrainConfig.augment`: flips and small shifts) and `strong_augment`, the
`real-augmented` recipe's: the cheap alternative to synthetic images that the study listed as
future work (flips, crops and shifts, colour jitter, grayscale, noise, random fill colour). Every
random number comes from the generator, so the same seed gives the same batches; the caller's
global RNG is never touched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["AUGMENTATIONS", "Augmentation", "flip_shift", "strong_augment"]

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

# strong_augment's ranges: mild enough that a 64 px fruit stays recognisable.
ZOOM = (0.75, 1.0)  # share of the side kept by the crop (1: no crop)
SHIFT = 0.15  # largest shift, as a share of half the side (grid coordinates run -1..1)
BRIGHTNESS = (0.7, 1.3)
CONTRAST = (0.7, 1.3)
SATURATION = (0.6, 1.4)
GRAYSCALE_P = 0.1
NOISE_P = 0.5
NOISE_SD = 8.0  # largest Gaussian noise sd, in 0-255 pixel units
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # BT.601 weights, as PIL's convert("L")


def flip_shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to size/16 pixels (black fill, like letterbox)."""
    n, _, size, _ = batch.shape
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    shift = max(1, size // 16)
    padded = nn.functional.pad(batch, (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=generator).tolist()
    return torch.stack(
        [padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offsets)]
    )


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=generator)


def _geometry(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip, crop (zoom in) and shift in one affine resampling; uncovered pixels get a random
    colour per image, so the model cannot learn the letterbox bars' colour as a cue."""
    n = len(x)
    zoom = _uniform(n, ZOOM, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = _uniform(2 * n, (-SHIFT, SHIFT), generator).view(n, 2)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = zoom * flip, zoom
    theta[:, :, 2] = shift
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    moved = nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    ones = torch.ones(n, 1, *x.shape[2:])
    covered = nn.functional.grid_sample(ones, grid, padding_mode="zeros", align_corners=False)
    fill = 255.0 * torch.rand(n, 3, 1, 1, generator=generator)
    return moved + (1 - covered) * fill


def _colour(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation jitter, then grayscale for a few images."""
    n = len(x)
    x = x * _uniform(n, BRIGHTNESS, generator).view(n, 1, 1, 1)
    gray = (x * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * _uniform(n, CONTRAST, generator).view(n, 1, 1, 1)
    gray = (x * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = gray + (x - gray) * _uniform(n, SATURATION, generator).view(n, 1, 1, 1)
    to_gray = (torch.rand(n, generator=generator) < GRAYSCALE_P).view(n, 1, 1, 1)
    gray = (x * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.where(to_gray, gray.expand_as(x), x)


def _noise(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = len(x)
    sd = NOISE_SD * torch.rand(n, generator=generator)
    sd = torch.where(torch.rand(n, generator=generator) < NOISE_P, sd, torch.zeros(n))
    return x + sd.view(n, 1, 1, 1) * torch.randn(x.shape, generator=generator)


def strong_augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The `real-augmented` recipe's augmentation of a uint8 batch N x 3 x S x S (uint8 out).

    Per image: horizontal flip (p 0.5), crop to 75-100% of the side and shift by up to 7.5% of
    it, uncovered pixels in a random colour; brightness, contrast and saturation jitter;
    grayscale (p 0.1); Gaussian noise (p 0.5, sd up to 8 of 255).
    """
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"`batch` must be uint8 N x 3 x S x S, got {batch.dtype} {batch.shape}")
    x = _geometry(batch.float(), generator)
    x = _noise(_colour(x, generator), generator)
    return x.round().clamp(0, 255).to(torch.uint8)


# The augmentations a recipe kind may name (`RecipeKind.augmentation`).
AUGMENTATIONS: dict[str, Augmentation] = {"flip-shift": flip_shift, "strong": strong_augment}
