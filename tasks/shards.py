"""Prefect tasks of a sharded generation run: plan and verify one shard's batches only."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from synth.config import GenerationConfig
from synth.dataset import PlannedImage, write_summary
from synth.shards import check_shard, prepare_shard, shard_batches
from tasks.generate import BatchSpec, DatasetRef, GenerationPlan

__all__ = ["plan_shard", "verify_shard"]


@task(name="plan-shard")
def plan_shard(config: GenerationConfig, out: str, shard: tuple[int, int]) -> GenerationPlan:
    """Repair this shard's own files in `out` and plan its fixed batches."""
    state = prepare_shard(Path(out), config, *shard)
    missing = {item.file_name for item in state.missing}
    batches = tuple(BatchSpec(n, items) for n, items in shard_batches(config, *shard))
    incomplete = frozenset(
        b.number for b in batches if any(i.file_name in missing for i in b.items)
    )
    total = sum(len(b.items) for b in batches)
    return GenerationPlan(out, batches, incomplete, len(missing), total, state.repairs)


@task(name="verify-shard")
def verify_shard(
    config: GenerationConfig, out: str, shard: tuple[int, int]
) -> tuple[DatasetRef, tuple[PlannedImage, ...]]:
    """This shard's missing images, and the dataset so far; `dataset.json` once it is complete."""
    state, missing = check_shard(Path(out), config, *shard)
    if not state.missing:
        write_summary(Path(out), config, state)
    ref = DatasetRef(out, state.digest, state.counts, sum(state.counts.values()))
    return ref, missing
