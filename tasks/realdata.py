"""Prefect task: validate and import a real image folder, publishing what was quarantined."""

from __future__ import annotations

import re
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from synth.data import RealDataset, import_real_dataset, write_import_report

__all__ = ["import_real"]


@task(name="import-real-data", task_run_name="import-real-data-{name}")
def import_real(
    root: str,
    classes: tuple[str, ...] | None,
    test_fraction: float,
    split_seed: int,
    report_dir: str,
    name: str = "real",
    require_test: bool = True,
) -> RealDataset:
    """Import `root` (bad files quarantined, never fatal; an empty test split is) and publish
    its counts, skips and the test photos that duplicate training photos."""
    dataset = import_real_dataset(
        root,
        classes=classes,
        test_fraction=test_fraction,
        split_seed=split_seed,
        require_test=require_test,
    )
    write_import_report(dataset, Path(report_dir) / f"import-{name}.json")
    rows = [{"split": split, **counts} for split, counts in dataset.counts().items()] + [
        {"split": "quarantined", "path": q.path, "reason": q.reason} for q in dataset.quarantined
    ]
    rows += [
        {
            "split": "test duplicates train",
            "path": d.test,
            "reason": f"{'same file as' if d.exact else f'{d.distance} hash bits from'} {d.train}",
        }
        for d in dataset.train_test_duplicates
    ]
    if dataset.train_test_duplicates:
        get_run_logger().warning(
            "%d test photos of %s duplicate training photos (see import-%s.json)",
            len(dataset.train_test_duplicates),
            root,
            name,
        )
    # Artifact keys allow only lowercase letters, digits and dashes; folder names allow more.
    key = "import-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    create_table_artifact(rows, key=key, description=f"Real images from {root}")
    return dataset
