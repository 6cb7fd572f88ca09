"""What the synthetic images cost: generation seconds per image, and per accuracy point gained.

The time comes from `dataset.json`'s `generation_seconds` when generation recorded it, else from
the manifest rows' `created` timestamps (the batch timings of the generation report are a Prefect
artifact, not a file). Rows of one batch share a time, so per run of generation the images
written after its first timestamp are divided into the time from the first to the last; a pause
of over `GAP_SECONDS` between two images separates runs (a resume the next day is not cost).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from synth.generation.manifest import ManifestRow, manifest_path, read_manifest

__all__ = ["GAP_SECONDS", "CostPerPoint", "GenerationCost", "cost_per_point", "generation_cost"]

# Longer than any batch takes (16 SD 1.5 images on a CPU: ~15 min), shorter than a paused run.
GAP_SECONDS = 3600.0


@dataclass(frozen=True)
class GenerationCost:
    """Wall-clock generation time of a synthetic set and where it was measured."""

    images: int
    seconds: float | None  # for all `images`; None when the timestamps cannot tell
    seconds_per_image: float | None
    source: str  # how `seconds` was measured, in words
    device: str  # as the manifest rows record it (e.g. 'cuda', 'cpu'; several joined by ', ')
    dtype: str
    model: str


@dataclass(frozen=True)
class CostPerPoint:
    """Generation seconds per accuracy point one recipe gained over the baseline on a test set."""

    recipe: str
    test_set: str
    seeds: int  # seeds both recipes were scored with
    gain_points: float  # mean over those seeds of (recipe - baseline accuracy) x 100
    seconds_per_point: float | None  # None when nothing was gained (or no time was measured)


def _latest_rows(root: Path) -> list[ManifestRow]:
    """The last row of every file: a regenerated image's earlier rows describe replaced bytes."""
    rows = {row.file_name: row for row in read_manifest(manifest_path(root))}
    return list(rows.values())


def _recorded_seconds(root: Path) -> float | None:
    try:
        value = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    seconds = value.get("generation_seconds") if isinstance(value, dict) else None
    return float(seconds) if isinstance(seconds, int | float) and seconds >= 0 else None


def _timestamp_seconds(times: Sequence[datetime]) -> tuple[float, int]:
    """(active seconds, images timed): per run, images after its first timestamp and its span."""
    seconds, timed = 0.0, 0
    ordered = sorted(times)
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or (ordered[i] - ordered[i - 1]).total_seconds() > GAP_SECONDS:
            run = ordered[start:i]
            seconds += (run[-1] - run[0]).total_seconds()
            timed += sum(t > run[0] for t in run)
            start = i
    return seconds, timed


def _common(values: Sequence[str]) -> str:
    return ", ".join(v for v, _ in Counter(values).most_common()) or "unknown"


def generation_cost(root: str | Path) -> GenerationCost:
    """Generation time of the synthetic dataset at `root` (its manifest and `dataset.json`).

    Returns:
        The cost; `seconds` is None when no timing is recorded and every image carries the same
        timestamp (faster than the timestamps' resolution).
    """
    root = Path(root)
    rows = _latest_rows(root)
    device, dtype = _common([r.device for r in rows]), _common([r.dtype for r in rows])
    model = _common([r.model for r in rows])
    recorded = _recorded_seconds(root)
    if recorded is not None and rows:
        per_image, source = recorded / len(rows), "dataset.json generation_seconds"
        return GenerationCost(len(rows), recorded, per_image, source, device, dtype, model)
    times = [datetime.fromisoformat(r.created) for r in rows]
    whole = all(t.microsecond == 0 for t in times)
    resolution = " (1 s resolution)" if whole else ""
    source = f"manifest 'created' timestamps{resolution}, pauses over {GAP_SECONDS:.0f} s left out"
    seconds, timed = _timestamp_seconds(times)
    if not timed:
        return GenerationCost(len(rows), None, None, source, device, dtype, model)
    per_image = seconds / timed
    return GenerationCost(len(rows), per_image * len(rows), per_image, source, device, dtype, model)


def cost_per_point(
    cost: GenerationCost,
    accuracy: dict[tuple[str, int, str], float],
    recipes: Sequence[str],
    baseline: str,
) -> tuple[CostPerPoint, ...]:
    """Generation seconds per accuracy point gained, per recipe and test set.

    The gain is the mean over shared seeds of (recipe - baseline) accuracy: the point estimate
    of the verdict's paired difference (its interval is in the verdict).

    Args:
        cost: From `generation_cost`; the whole synthetic set's time is charged to each recipe.
        accuracy: (recipe, seed, test set) -> accuracy.
        recipes: The recipes that train on synthetic images.
        baseline: The real-only recipe they are compared with.
    """
    out = []
    test_sets = dict.fromkeys(t for _, _, t in accuracy)
    for recipe in recipes:
        for test in test_sets:
            seeds = sorted(
                s
                for r, s, t in accuracy
                if (r, t) == (recipe, test) and (baseline, s, t) in accuracy
            )
            if not seeds:
                continue
            diffs = [accuracy[recipe, s, test] - accuracy[baseline, s, test] for s in seeds]
            gain = 100.0 * sum(diffs) / len(diffs)
            per_point = cost.seconds / gain if cost.seconds is not None and gain > 0 else None
            out.append(CostPerPoint(recipe, test, len(seeds), gain, per_point))
    return tuple(out)
