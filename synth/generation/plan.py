"""What a generation config asks for: every planned image, fixed batches, and their shards.

A whole dataset is shard 0 of 1, so one code path plans, repairs and verifies both an unsharded
run and each of several workers' shards. Shard `index` of `count` owns the fixed batches whose
number is `index` modulo `count`; batches are fixed by the config, so the shards partition the
plan the same way on every machine and an image does not depend on which shard made it.
"""

from __future__ import annotations

from dataclasses import dataclass

from synth.config import GenerationConfig
from synth.lock import validate_shard
from synth.naming import validate_class_names
from synth.seeds import image_seed

__all__ = [
    "BatchSpec",
    "DatasetRef",
    "GenerationPlan",
    "PlannedImage",
    "Shard",
    "WHOLE",
    "plan_batches",
    "plan_images",
    "split_batches",
]


@dataclass(frozen=True)
class PlannedImage:
    """One image the config asks for; everything but the pixels."""

    label: str
    class_dir: str
    index: int
    seed: int
    prompt: str

    @property
    def file_name(self) -> str:
        return f"{self.class_dir}/{self.index:06d}.png"


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


@dataclass(frozen=True)
class DatasetRef:
    """A synthetic dataset: where it is, what it holds, and its content digest."""

    root: str
    digest: str
    counts: dict[str, int]
    images: int


def plan_images(config: GenerationConfig) -> list[PlannedImage]:
    """Every image of the dataset, class by class, in a fixed order."""
    dirs = validate_class_names([c.name for c in config.classes])
    return [
        PlannedImage(
            label=spec.name,
            class_dir=class_dir,
            index=i,
            seed=image_seed(config.seed, spec.name, i),
            prompt=config.prompt_for(spec, i),
        )
        for spec, class_dir in zip(config.classes, dirs, strict=True)
        for i in range(config.images_per_class)
    ]


def split_batches(plan: list[PlannedImage], batch_size: int) -> list[tuple[PlannedImage, ...]]:
    """Fixed batches over the whole plan, so a batch means the same images on every run."""
    return [tuple(plan[i : i + batch_size]) for i in range(0, len(plan), batch_size)]


def plan_batches(config: GenerationConfig, shard: Shard = WHOLE) -> tuple[BatchSpec, ...]:
    """The fixed batches `shard` owns (every batch for the whole dataset)."""
    batches = split_batches(plan_images(config), config.batch_size)
    return tuple(BatchSpec(n, items) for n, items in enumerate(batches) if shard.owns(n))
