"""Real-guided generation (img2img, SDEdit): `variations_per_image` variations of each real
train photo, each starting from the photo noised to `strength` instead of from pure noise.

Sources. The train split of a labelled ImageFolder, split exactly as an experiment splits its real
data (`synth.data.import_real_dataset`: a test/ folder is kept, else `test_fraction` of each class
is held out, seeded by `split_seed`). In an experiment the sources are the experiment's own
`real_data`, split by its `test_fraction` and `split_seed` (`with_experiment_sources`), so the
photos that guide generation are the classifier's training photos; `datasynth generate` uses the
config's `source_images`, `source_test_fraction` and `source_split_seed`. A train photo whose
bytes are also in the test split is refused: a test image must never guide generation.

Plan. Per class, its distinct train photos sorted by sha256, k variations each: image
`rank * k + v` of the class is variation v of the photo of that rank, seeded by (dataset seed,
class, photo sha256, v). Sorting by content makes renaming a photo change nothing; adding,
removing or editing one re-ranks the photos after it, and a resume reports their images as
changed (`source_sha256`, `seed`).

Pixels in. Each photo is decoded like every real photo (`load_rgb`: EXIF orientation applied,
transparency on white), then letterboxed into width x height: scaled with LANCZOS so the whole
photo fits, centred (offsets rounded down) on black, the fill the study's preprocessing
letterboxes real photos with. Its bytes are checked against the planned sha256 first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from synth.config import GenerationConfig
from synth.errors import ConfigError, DatasetDriftError, InputError
from synth.generation.model_loader import ModelInfo
from synth.generation.plan import IMG2IMG, PlannedImage, planned_image
from synth.seeds import derive_seed
from synth.storage import sha256_file

__all__ = [
    "SourcePhoto",
    "fit_to_size",
    "images_per_class",
    "load_source",
    "plan_variations",
    "source_photos",
    "with_experiment_sources",
]

_FILL = (0, 0, 0)  # black bars, as the study's preprocessing letterboxes real photos


@dataclass(frozen=True)
class SourcePhoto:
    """A train photo that guides generation: where it is and its content digest."""

    path: str
    sha256: str


# (folder, classes, split) -> (the folder's file signature, its photos): the photos are decoded
# once per process while no file under the folder changes, not at every plan and verify.
_cache: dict[tuple, tuple[tuple, dict[str, tuple[SourcePhoto, ...]]]] = {}


def _signature(root: Path) -> tuple:
    """Every file under `root` with its inode, size and mtime: any edit changes it."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


def _import(root: Path, config: GenerationConfig) -> dict[str, tuple[SourcePhoto, ...]]:
    from synth.data.real_import import import_real_dataset  # synth.data imports generation

    dataset = import_real_dataset(
        root,
        classes=[c.name for c in config.classes],
        test_fraction=config.source_test_fraction,
        split_seed=config.source_split_seed,
        require_test=False,  # only the train split is used; an empty test split takes nothing
    )
    test = {e.sha256: e.path for e in dataset.split("test")}
    by_class: dict[str, dict[str, str]] = {c.name: {} for c in config.classes}
    for entry in dataset.split("train"):
        if entry.sha256 in test:
            raise InputError(
                f"source photo {entry.path!r} has the same bytes as test photo "
                f"{test[entry.sha256]!r}: a test image must never guide generation; remove the "
                "copy from train"
            )
        by_class[entry.label].setdefault(entry.sha256, entry.path)  # copies: one source
    return {
        label: tuple(SourcePhoto(path, sha) for sha, path in sorted(photos.items()))
        for label, photos in by_class.items()
    }


def source_photos(config: GenerationConfig) -> dict[str, tuple[SourcePhoto, ...]]:
    """{class name: its distinct train photos, sorted by sha256} from `config.source_images`.

    Raises:
        InputError: No `source_images`, a folder that is not a labelled ImageFolder of the
            config's classes, or a train photo that is also a test photo.
    """
    if config.source_images is None:
        raise InputError(
            "strategy 'img2img' needs `source_images`: a labelled folder of real photos whose "
            "train split guides generation (in an experiment, its `real_data`)"
        )
    root = Path(os.path.abspath(Path(config.source_images).expanduser()))
    if not root.is_dir():
        raise InputError(f"`source_images` {config.source_images!r} is not a directory")
    key = (
        str(root),
        tuple(c.name for c in config.classes),
        config.source_test_fraction,
        config.source_split_seed,
    )
    signature = _signature(root)
    cached = _cache.get(key)
    if cached is None or cached[0] != signature:
        _cache[key] = (signature, _import(root, config))
    return _cache[key][1]


def images_per_class(config: GenerationConfig) -> dict[str, int]:
    """{class name: images planned}: `variations_per_image` per distinct train photo."""
    k = config.variations_per_image
    return {label: k * len(photos) for label, photos in source_photos(config).items()}


def plan_variations(
    config: GenerationConfig, class_dirs: list[str], model: ModelInfo
) -> list[PlannedImage]:
    """Every img2img image: by class, then photo (by sha256), then variation.

    `model` is the config's resolved model, as for `plan.plan_images`.
    """
    photos = source_photos(config)
    k = config.variations_per_image
    plan = []
    for spec, class_dir in zip(config.classes, class_dirs, strict=True):
        for rank, photo in enumerate(photos[spec.name]):
            for variation in range(k):
                # keyed by the photo, not the index: a re-ranked photo keeps its seeds
                seed = derive_seed(config.seed, spec.name, photo.sha256, variation)
                plan.append(
                    planned_image(
                        config,
                        model,
                        spec,
                        class_dir,
                        rank * k + variation,
                        seed=seed,
                        strategy=IMG2IMG,
                        source_sha256=photo.sha256,
                        strength=config.strength,
                        source_path=photo.path,
                    )
                )
    return plan


def fit_to_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` scaled (LANCZOS) to fit whole inside width x height, centred on black."""
    w, h = image.size
    scale = min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height), _FILL)
    canvas.paste(resized, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def load_source(item: PlannedImage) -> Image.Image:
    """The planned image's source photo, fitted to its size; its bytes must be the planned ones.

    Raises:
        DatasetDriftError: The photo changed or vanished since the images were planned.
    """
    from synth.data.real_import import load_rgb

    try:
        sha = sha256_file(Path(item.source_path))
    except OSError:
        sha = None
    if sha != item.source_sha256:
        raise DatasetDriftError(
            f"source photo {item.source_path!r} of {item.file_name} changed or vanished after "
            "the images were planned; run again to plan from the photos as they are now"
        )
    return fit_to_size(load_rgb(item.source_path), item.width, item.height)


def with_experiment_sources(
    generation: GenerationConfig, real_data: str, test_fraction: float, split_seed: int
) -> GenerationConfig:
    """An experiment's generation config: img2img sources are its own real data, split alike.

    Raises:
        ConfigError: `generation.source_images` names another folder than `real_data`.
    """
    if generation.strategy != IMG2IMG:
        return generation
    named = generation.source_images
    if named is not None and os.path.abspath(named) != os.path.abspath(real_data):
        raise ConfigError(
            f"`generation.source_images` {named!r} differs from `real_data` {real_data!r}: in an "
            "experiment img2img varies the real train photos; remove `source_images`"
        )
    update = dict(
        source_images=real_data, source_test_fraction=test_fraction, source_split_seed=split_seed
    )
    return generation.model_copy(update=update)
