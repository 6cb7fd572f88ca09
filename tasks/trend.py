"""Prefect tasks of nightly regeneration: open a version, record it, prune, publish the trend."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from synth.config import ExperimentConfig
from synth.reporting import (
    VersionInfo,
    VersionSlot,
    finish_version,
    list_versions,
    markdown_image,
    open_version,
    prune_versions,
    trend_plot,
    trend_rows,
    trend_table,
)

__all__ = ["begin_version", "prune_old_versions", "publish_trend", "record_dataset_version"]


@task(name="open-version")
def begin_version(config: ExperimentConfig, root: str) -> VersionSlot:
    """A new dated version under `root`, or the incomplete one a crashed run left (resumed)."""
    return open_version(root, config, datetime.now(UTC))


@task(name="record-version", task_run_name="record-version-{slot.name}")
def record_dataset_version(slot: VersionSlot) -> VersionInfo:
    """Write the version's `version.json` (dataset digest, counts, metrics): it is complete."""
    return finish_version(slot)


@task(name="prune-versions")
def prune_old_versions(root: str, keep: int) -> list[str]:
    """Remove all but the newest `keep` complete versions (and abandoned incomplete ones)."""
    return prune_versions(root, keep)


@task(name="publish-trend")
def publish_trend(root: str, metric: str = "accuracy") -> list[dict]:
    """Table artifact `dataset-trend` (a row per version) and the trend plot as markdown."""
    versions = list_versions(root)
    table = trend_table(versions, metric)
    create_table_artifact(
        table, key="dataset-trend", description=f"{metric} per recipe (mean ± 95% CI) by version"
    )
    plot = markdown_image(trend_plot(trend_rows(versions, metric), metric), f"{metric} trend")
    create_markdown_artifact(
        f"# Dataset versions\n\n{len(versions)} versions under `{root}`.\n\n{plot}\n",
        key="dataset-trend-plot",
    )
    return table
