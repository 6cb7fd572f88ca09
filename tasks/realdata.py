"""Prefect task: validate and import a real image folder, publishing what was quarantined."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact

from synth.data import RealDataset, import_real_dataset, write_import_report

__all__ = ["import_real"]


@task(name="import-real-data", task_run_name="import-real-data-{name}")
def import_real(
    root: str,
    classes: tuple[str, ...],
    test_fraction: float,
    seed: int,
    report_dir: str,
    name: str = "real",
) -> RealDataset:
    """Import `root` (bad files quarantined, never fatal) and publish its counts and skips."""
    dataset = import_real_dataset(root, classes=classes, test_fraction=test_fraction, seed=seed)
    write_import_report(dataset, Path(report_dir) / f"import-{name}.json")
    rows = [{"split": split, **counts} for split, counts in dataset.counts().items()] + [
        {"split": "quarantined", "path": q.path, "reason": q.reason} for q in dataset.quarantined
    ]
    create_table_artifact(rows, key=f"import-{name}", description=f"Real images from {root}")
    return dataset
