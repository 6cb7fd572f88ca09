"""A Prefect progress artifact that long flows update as their steps finish."""

from __future__ import annotations

from prefect.artifacts import create_progress_artifact, update_progress_artifact

__all__ = ["StepProgress"]


class StepProgress:
    """Progress in percent of `total` units (batches, steps), published under `key`."""

    def __init__(self, total: int, key: str, description: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.artifact_id = create_progress_artifact(0.0, key=key, description=description)

    def advance(self, units: int = 1) -> None:
        self.done = min(self.done + units, self.total)
        update_progress_artifact(self.artifact_id, 100.0 * self.done / self.total)
