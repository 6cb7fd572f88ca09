"""Prefect tasks of `personalize`: fit a generator to the real train split, show its samples."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from synth.data import RealDataset
from synth.generation.personalize import PersonalizeResult, personalize
from synth.generation.personalize_config import PersonalizeConfig
from synth.generation.personalize_samples import sample_grid_images
from synth.reporting import contact_sheet, markdown_image
from synth.storage import atomic_write_bytes, encode_png

__all__ = ["fit_generator", "publish_generator_samples"]


@task(name="fit-generator")
def fit_generator(config: PersonalizeConfig, real: RealDataset, out: str) -> PersonalizeResult:
    """Fit (or resume, or reuse) the generator; a `personalize-progress` artifact follows it."""
    artifact = create_progress_artifact(0.0, key="personalize-progress", description="Fit steps")
    shown = [0.0]

    def progress(step: int, total: int) -> None:
        percent = 100.0 * step / max(total, 1)
        if percent - shown[0] >= 2.0 or step == total:  # every 2%: not one API call per step
            update_progress_artifact(artifact, percent)
            shown[0] = percent

    result = personalize(config, real, out, progress=progress)
    update_progress_artifact(artifact, 100.0)
    return result


@task(name="publish-generator-samples")
def publish_generator_samples(result: PersonalizeResult, classes: tuple[str, ...]) -> str:
    """Samples per class saved under `<out>/samples/` and shown as the `personalize-samples`
    artifact (a grid, a row per class)."""
    images = sample_grid_images(result.out_dir, classes, per_class=8, seed=0)
    paths: dict[str, list[Path]] = {}
    for label, row in images.items():
        folder = Path(result.out_dir) / "samples" / label
        folder.mkdir(parents=True, exist_ok=True)
        paths[label] = []
        for i, image in enumerate(row):
            path = folder / f"{i:02d}.png"
            atomic_write_bytes(path, encode_png(image))
            paths[label].append(path)
    sheet = markdown_image(contact_sheet(paths), "samples per class")
    create_markdown_artifact(
        f"# Fitted generator\n\n`{result.out_dir}` ({result.kind}, digest `{result.digest[:16]}`),"
        f" fit on {result.n_images} train photos (train split digest "
        f"`{result.train_digest[:16]}`; the test split never reached it) in {result.steps} "
        f"steps, final loss {result.final_loss:.4f}.\n\n{sheet}\n",
        key="personalize-samples",
    )
    return str(result.out_dir)
