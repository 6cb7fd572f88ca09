"""Prefect tasks of generation: plan + repair, one task per batch, verify, publish."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import INPUTS, TASK_SOURCE

from synth.config import GenerationConfig
from synth.dataset import (
    PlannedImage,
    plan_images,
    prepare_output,
    scan_dataset,
    split_batches,
    write_summary,
)
from synth.generate import BatchResult, generate_batch, model_info
from synth.naming import validate_class_names
from synth.pipeline import ModelUnavailableError
from synth.report import contact_sheet, generation_rows, markdown_image

__all__ = [
    "BatchSpec",
    "DatasetRef",
    "GenerationPlan",
    "generate_images",
    "plan_generation",
    "publish_generation_report",
    "verify_dataset",
]


@dataclass(frozen=True)
class BatchSpec:
    """A fixed batch of the plan: the same images on every run, hence a stable cache key."""

    number: int
    items: tuple[PlannedImage, ...]


@dataclass(frozen=True)
class GenerationPlan:
    """The batches of a dataset and which of them had files missing when planned."""

    out: str
    batches: tuple[BatchSpec, ...]
    incomplete: frozenset[int]
    missing: int
    total: int
    repairs: dict[str, int]


@dataclass(frozen=True)
class DatasetRef:
    """A finished synthetic dataset: where it is, what it holds, and its content digest."""

    root: str
    digest: str
    counts: dict[str, int]
    images: int


def _input_error(task, task_run, state) -> bool:
    """Retry transient failures only: a bad config or a missing model fails at once."""
    try:
        state.result()
    except (ModelUnavailableError, ValueError):
        return False
    except Exception:
        return True
    return True


@task(name="plan-generation")
def plan_generation(config: GenerationConfig, out: str) -> GenerationPlan:
    """Repair crash leftovers in `out` and plan fixed batches, marking the complete ones."""
    state = prepare_output(Path(out), config, model_info(config))
    missing = {item.file_name for item in state.missing}
    batches = tuple(
        BatchSpec(n, items)
        for n, items in enumerate(split_batches(plan_images(config), config.batch_size))
    )
    incomplete = frozenset(
        b.number for b in batches if any(i.file_name in missing for i in b.items)
    )
    total = len(config.classes) * config.images_per_class
    return GenerationPlan(out, batches, incomplete, len(missing), total, state.repairs)


@task(
    name="generate-batch",
    task_run_name="generate-batch-{batch.number}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=_input_error,
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
)
def generate_images(config: GenerationConfig, out: str, batch: BatchSpec) -> BatchResult:
    """Generate one batch; a retry or rerun skips the images already written."""
    return generate_batch(config, Path(out), batch.items)


@task(name="verify-dataset")
def verify_dataset(
    config: GenerationConfig, out: str
) -> tuple[DatasetRef, tuple[PlannedImage, ...]]:
    """Check every planned image is on disk with its sha256; write `dataset.json` when complete."""
    state = scan_dataset(Path(out), config)
    if not state.missing:
        write_summary(Path(out), config, state)
    ref = DatasetRef(out, state.digest, state.counts, sum(state.counts.values()))
    return ref, state.missing


class ProgressReporter:
    """A Prefect progress artifact updated as batches finish."""

    def __init__(self, total_batches: int, key: str = "generation-progress") -> None:
        self.total = max(total_batches, 1)
        self.done = 0
        self.artifact_id = create_progress_artifact(
            0.0, key=key, description="Generation batches finished"
        )

    def batch_done(self) -> None:
        self.done += 1
        update_progress_artifact(self.artifact_id, 100.0 * self.done / self.total)


@task(name="publish-generation-report")
def publish_generation_report(
    ref: DatasetRef, results: list[BatchResult], seconds: float, samples_per_class: int = 8
) -> None:
    """Table artifact (per class: images, seconds, images/s) and a contact sheet of samples."""
    generated: dict[str, int] = defaultdict(int)
    class_seconds: dict[str, float] = defaultdict(float)
    for r in results:
        made = sum(r.per_class.values())
        for label, n in r.per_class.items():
            generated[label] += n
            class_seconds[label] += r.seconds * n / made  # a mixed batch's time, split by images
    rows = generation_rows(ref.counts, generated, class_seconds)
    create_table_artifact(rows, key="generation-summary", description=f"Dataset {ref.root}")
    root = Path(ref.root) / "train"
    dirs = validate_class_names(list(ref.counts))
    by_class = {
        label: sorted((root / d).glob("*.png"))[:samples_per_class]
        for label, d in zip(ref.counts, dirs, strict=True)
    }
    sheet = markdown_image(contact_sheet(by_class), "samples per class")
    create_markdown_artifact(
        f"# Synthetic dataset\n\n`{ref.root}`: {ref.images} images, digest `{ref.digest[:16]}`, "
        f"{sum(generated.values())} generated by this run in {seconds:.1f} s.\n\n{sheet}\n",
        key="generation-samples",
    )
