"""Make real and synthetic images look alike, and cache them as one uint8 tensor file.

Real photos are letterboxed: resized so the longer side is S, centred on an S x S canvas.
Synthetic images are square, so letterboxing alone would never give them padding bars; a random
margin is first cut from each side so they get bars like the photos. Every random choice for an
image comes from `random.Random(f"{seed}:{key}")`, so an image's pixels depend only on the seed,
its key and its file, never on the order or on the other images.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from PIL import Image, ImageStat

from synth.config import PreprocessConfig
from synth.data.real_import import RealDataset, Split, load_rgb
from synth.seeds import image_rng
from synth.storage import TEMP_MARKER, sha256_file

__all__ = [
    "PreprocessItem",
    "TensorData",
    "TensorSet",
    "build_tensor_set",
    "crop_random_margin",
    "image_rng",
    "letterbox",
    "load_tensor_set",
    "real_items",
]

Padding = Literal["black", "white", "mean", "noise"]
# LANCZOS: Pillow widens its kernel when reducing, so a 4000 px photo shrunk to 64 px is
# antialiased (no moire) and stays sharper than BILINEAR; the cost is nothing at these sizes.
RESAMPLE = Image.Resampling.LANCZOS
_FILLS = {"black": (0, 0, 0), "white": (255, 255, 255)}


@dataclass(frozen=True)
class PreprocessItem:
    """One image to preprocess: its file, class index, stable key and where it comes from."""

    path: str
    label: int
    key: str  # stable per image (e.g. the file's sha256): seeds its random margins and noise
    synthetic: bool


@dataclass(frozen=True)
class TensorSet:
    """Reference to a written tensor file: small and hashable, what tasks pass around."""

    path: str
    count: int
    digest: str  # sha256 of the file's bytes


@dataclass(frozen=True)
class TensorData:
    """A loaded tensor file."""

    images: torch.Tensor  # uint8, N x 3 x S x S
    labels: torch.Tensor  # int64, N
    synthetic: torch.Tensor  # bool, N
    keys: tuple[str, ...]
    config: PreprocessConfig


def letterbox(
    image: Image.Image, size: int, padding: Padding, rng: random.Random | None = None
) -> Image.Image:
    """Resize `image` so its longer side is `size`, centred on a `size` x `size` canvas.

    Args:
        image: An RGB image (use `load_rgb` first: it composites transparency on white).
        size: Side of the output square, in pixels.
        padding: Fill of the bars: 'black', 'white', 'mean' (the image's mean colour) or
            'noise' (uniform random pixels drawn from `rng`).
        rng: Needed for 'noise' only.

    Returns:
        A new `size` x `size` RGB image.
    """
    if image.mode != "RGB":
        raise ValueError(f"`image` must be RGB (see load_rgb), got mode {image.mode!r}")
    if size < 1:
        raise ValueError(f"`size` must be >= 1, got {size}")
    width, height = image.size
    scale = size / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = image if new_size == image.size else image.resize(new_size, RESAMPLE)
    canvas = _canvas(resized, size, padding, rng)
    canvas.paste(resized, ((size - new_size[0]) // 2, (size - new_size[1]) // 2))
    return canvas


def _canvas(
    image: Image.Image, size: int, padding: Padding, rng: random.Random | None
) -> Image.Image:
    if padding in _FILLS:
        return Image.new("RGB", (size, size), _FILLS[padding])
    if padding == "mean":
        mean = tuple(round(v) for v in ImageStat.Stat(image).mean)
        return Image.new("RGB", (size, size), mean)
    if padding == "noise":
        if rng is None:
            raise ValueError("`padding` 'noise' needs an `rng`")
        return Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    raise ValueError(f"`padding` must be one of black, white, mean, noise; got {padding!r}")


def crop_random_margin(
    image: Image.Image, margin_range: tuple[float, float], rng: random.Random
) -> Image.Image:
    """Cut a random fraction in [low, high] of the size from each side, drawn independently.

    The four fractions differ, so the content left is usually not square and letterboxing then
    adds bars, as it does to real photos. (0, 0) returns `image` itself and draws nothing.
    """
    low, high = margin_range
    if not 0.0 <= low <= high < 0.5:
        raise ValueError(f"`margin_range` must satisfy 0 <= low <= high < 0.5, got {margin_range}")
    if high == 0.0:
        return image
    width, height = image.size
    left, top, right, bottom = (rng.uniform(low, high) for _ in range(4))
    box = (
        round(left * width),
        round(top * height),
        max(round(left * width) + 1, width - round(right * width)),
        max(round(top * height) + 1, height - round(bottom * height)),
    )
    return image.crop(box)


def _prepare(item: PreprocessItem, config: PreprocessConfig) -> Image.Image:
    """The S x S image of one item: load, (synthetic) crop margins, letterbox."""
    rng = image_rng(config.seed, item.key)
    image = load_rgb(item.path)
    if item.synthetic:
        image = crop_random_margin(image, config.synthetic_margin, rng)
    return letterbox(image, config.size, config.padding, rng)


def _save_atomic(payload: dict, out: Path) -> None:
    """torch.save straight into a temp file beside `out`, then rename: never a half file."""
    tmp = out.with_name(f".{out.name}{TEMP_MARKER}{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)  # a file object: the archive name does not depend on `out`
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


def build_tensor_set(
    items: Sequence[PreprocessItem],
    out_file: str | os.PathLike[str],
    config: PreprocessConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TensorSet:
    """Preprocess `items` into one tensor file, written atomically.

    The file holds `{'images': uint8 N x 3 x S x S, 'labels': int64 N, 'synthetic': bool N,
    'keys': list[str], 'config': config.model_dump()}`; load it with `load_tensor_set`.

    Args:
        items: The images, in the order of the rows.
        out_file: The file to write; its folder must exist.
        config: Size, padding, synthetic margins and seed.
        progress: Called as `progress(done, total)` after each image.

    Returns:
        The file's path, row count and sha256.

    Raises:
        ValueError: A negative label, or a missing output folder.
        BadImageError: An item's file cannot be decoded.
    """
    # 1. Check inputs
    out = Path(out_file)
    if not out.parent.is_dir():
        raise ValueError(f"`out_file` folder {str(out.parent)!r} does not exist")
    bad_labels = [it.label for it in items if it.label < 0]
    if bad_labels:
        raise ValueError(f"item labels must be class indices >= 0, got {bad_labels[:5]}")

    # 2. Preallocate once: N x 3 x S x S uint8 is 4x smaller than float and never copied
    n, side = len(items), config.size
    images = torch.empty((n, 3, side, side), dtype=torch.uint8)

    # 3. Fill row by row
    for i, item in enumerate(items):
        pixels = _prepare(item, config).tobytes()
        images[i] = (
            torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
            .view(side, side, 3)
            .permute(2, 0, 1)
        )
        if progress is not None:
            progress(i + 1, n)

    # 4. Write and fingerprint
    payload = {
        "images": images,
        "labels": torch.tensor([it.label for it in items], dtype=torch.int64),
        "synthetic": torch.tensor([it.synthetic for it in items], dtype=torch.bool),
        "keys": [it.key for it in items],
        "config": config.model_dump(),
    }
    _save_atomic(payload, out)
    return TensorSet(str(out), n, sha256_file(out))


def load_tensor_set(path: str | os.PathLike[str], *, digest: str | None = None) -> TensorData:
    """Load a tensor file (`weights_only=True`: no code runs); check its digest when given."""
    path = Path(path)
    if digest is not None:
        actual = sha256_file(path)
        if actual != digest:
            raise ValueError(f"tensor file {str(path)!r} has sha256 {actual}, expected {digest}")
    data = torch.load(path, weights_only=True)
    images, labels = data["images"], data["labels"]
    if images.dtype != torch.uint8 or images.ndim != 4 or len(labels) != len(images):
        raise ValueError(f"tensor file {str(path)!r} is not a preprocess tensor set")
    return TensorData(
        images=images,
        labels=labels,
        synthetic=data["synthetic"],
        keys=tuple(data["keys"]),
        config=PreprocessConfig.model_validate(data["config"]),
    )


def real_items(dataset: RealDataset, split: Split) -> list[PreprocessItem]:
    """The items of one split of a real dataset; keys are file hashes, labels class indices."""
    index = {c: i for i, c in enumerate(dataset.classes)}
    return [
        PreprocessItem(e.path, index[e.label], e.sha256, synthetic=False)
        for e in dataset.split(split)
    ]
