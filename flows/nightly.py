"""The `nightly-regeneration` flow: a new dataset version, the study re-run on it, a trend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.experiment import experiment
from flows.runners import with_parent_runner
from synth.config import ExperimentConfig
from synth.lock import DatasetLock
from tasks.trend import begin_version, prune_old_versions, publish_trend, record_dataset_version

__all__ = ["nightly_regeneration"]


@flow(name="nightly-regeneration", log_prints=True)
def nightly_regeneration(
    config: ExperimentConfig,
    root: str | None = None,
    keep_versions: Annotated[int, Field(ge=1, description="Complete versions kept.")] = 7,
) -> str:
    """Regenerate the synthetic dataset as a new version, re-evaluate, publish the trend.

    Steps: 1. open a dated version under `root` (default `<config.out>/nightly`), or resume the
    incomplete one a crashed run left, 2. run the experiment on it (subflow: generation with the
    version's seed into the version, models and report into its `run/`), 3. record the version
    (dataset digest, counts, metrics), 4. prune to the newest `keep_versions`, 5. publish the
    `dataset-trend` table and `dataset-trend-plot` artifacts. Returns the version's directory.
    """
    root = str(Path(root or Path(config.out) / "nightly").resolve())
    with DatasetLock(Path(root)):  # one nightly run per root: resuming and pruning need it
        # Step 1: pick or resume the version
        slot = begin_version(config, root)
        print(f"version {slot.name} ({'resumed' if slot.resumed else 'new'}), seed {slot.seed}")
        # Step 2: the study on this version's images
        with_parent_runner(experiment)(slot.config, synthetic_dir=slot.path)
        # Step 3: record it (this makes the version complete)
        record_dataset_version(slot)
        # Step 4: prune old versions
        removed = prune_old_versions(root, keep_versions)
        if removed:
            print(f"pruned {len(removed)} old versions: {removed}")
        # Step 5: trend across versions
        publish_trend(root)
    return slot.path
