"""What a generation config asks for: every planned image, fixed batches, and their shards.

Each planned image carries every field that decides its pixels (see `provenance`), so a finished
image is compared with what the config asks for now, not just found by name.

A whole dataset is shard 0 of 1, so one code path plans, repairs and verifies both an unsharded
run and each of several workers' shards. Shard `index` of `count` owns the fixed batches whose
number is `index` modulo `count`; batches are fixed by the config, so the shards partition the
plan the same way on every machine and an image does not depend on which shard made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synth.config import ClassSpec, GenerationConfig
from synth.generation.model_loader import ModelInfo, model_info
from synth.generation.provenance import Provenance
from synth.lock import validate_shard
from synth.naming import validate_class_names
from synth.seeds import image_seed

__all__ = [
    "BatchSpec",
    "GenerationPlan",
    "PlannedImage",
    "Shard",
    "WHOLE",
    "image_file_name",
    "plan_batches",
    "plan_images",
    "planned_file_names",
    "split_batches",
]

IMG2IMG = "img2img"


def image_file_name(class_dir: str, index: int) -> str:
    """Where image `index` of a class lives, relative to the split folder."""
    return f"{class_dir}/{index:06d}.png"


@dataclass(frozen=True, kw_only=True)
class PlannedImage(Provenance):
    """One image the config asks for: where it goes and every field that decides its pixels."""

    label: str
    class_dir: str
    index: int
    # img2img: where the photo was found when planned; not provenance (its bytes are)
    source_path: str = field(default="", compare=False)

    @property
    def file_name(self) -> str:
        return image_file_name(self.class_dir, self.index)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`; the whole dataset is `Shard(0, 1)`."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        validate_shard(self.index, self.count)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, batch_number: int) -> bool:
        return batch_number % self.count == self.index


WHOLE = Shard()


@dataclass(frozen=True)
class BatchSpec:
    """A fixed batch of the plan: the same images on every run, hence a stable cache key."""

    number: int
    items: tuple[PlannedImage, ...]


@dataclass(frozen=True)
class GenerationPlan:
    """The batches of a shard (all of them for a whole dataset) and which were incomplete."""

    out: str
    batches: tuple[BatchSpec, ...]
    incomplete: frozenset[int]
    missing: int
    total: int
    repairs: dict[str, int]


def planned_file_names(config: GenerationConfig) -> list[str]:
    """The file names of `plan_images(config)`, without resolving the model."""
    dirs = validate_class_names([c.name for c in config.classes])
    counts = [config.images_per_class] * len(dirs)
    if config.strategy == IMG2IMG:
        from synth.generation.img2img import images_per_class  # reads the photos: only here

        counts = list(images_per_class(config).values())
    return [image_file_name(d, i) for d, n in zip(dirs, counts, strict=True) for i in range(n)]


def planned_image(
    config: GenerationConfig,
    model: ModelInfo,
    spec: ClassSpec,
    class_dir: str,
    index: int,
    *,
    seed: int,
    **img2img,
) -> PlannedImage:
    """Image `index` of class `spec`, worded as the config asks (`planned_prompt`) and made with
    its settings and resolved `model`; `img2img` holds that strategy's own fields (`img2img.py`)."""
    prompt, context = config.planned_prompt(spec, index)
    return PlannedImage(
        label=spec.name,
        class_dir=class_dir,
        index=index,
        seed=seed,
        prompt=prompt,
        context=context,
        negative_prompt=config.negative_prompt,
        model=model.model,
        model_revision=model.revision,
        lora_digest=model.lora_digest,
        lora_scale=model.lora_scale,
        scheduler=model.scheduler,
        steps=config.steps,
        guidance_scale=config.guidance_scale,
        width=config.width,
        height=config.height,
        dtype=model.dtype,
        **img2img,
    )


def plan_images(config: GenerationConfig, model: ModelInfo | None = None) -> list[PlannedImage]:
    """Every image of the dataset, class by class, in a fixed order.

    `model` is the config's resolved model (`model_info(config)`, computed when not given): its
    revision or local digest, dtype and LoRA digest are part of each image's provenance.
    img2img plans `variations_per_image` images per train photo instead (`img2img.py`).
    """
    model = model or model_info(config)
    dirs = validate_class_names([c.name for c in config.classes])
    if config.strategy == IMG2IMG:
        # imported here: img2img reads real photos through synth.data, which imports this
        from synth.generation.img2img import plan_variations

        return plan_variations(config, dirs, model)
    plan = []
    for spec, class_dir in zip(config.classes, dirs, strict=True):
        for i in range(config.images_per_class):
            seed = image_seed(config.seed, spec.name, i)
            plan.append(planned_image(config, model, spec, class_dir, i, seed=seed))
    return plan


def split_batches(plan: list[PlannedImage], batch_size: int) -> list[tuple[PlannedImage, ...]]:
    """Fixed batches over the whole plan, so a batch means the same images on every run."""
    return [tuple(plan[i : i + batch_size]) for i in range(0, len(plan), batch_size)]


def plan_batches(
    config: GenerationConfig, shard: Shard = WHOLE, model: ModelInfo | None = None
) -> tuple[BatchSpec, ...]:
    """The fixed batches `shard` owns (every batch for the whole dataset)."""
    batches = split_batches(plan_images(config, model), config.batch_size)
    return tuple(BatchSpec(n, items) for n, items in enumerate(batches) if shard.owns(n))
