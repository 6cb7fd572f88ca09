"""The `generate_dataset` flow: plan, one task per batch, verify (and repair), report."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from synth.config import GenerationConfig
from synth.generation import BatchSpec, DatasetRef, Shard
from synth.lock import DatasetLock
from tasks.generate import (
    generate_images,
    plan_generation,
    publish_generation_report,
    verify_dataset,
)
from tasks.progress import StepProgress

__all__ = ["generate_dataset"]


# Two threads: one batch denoises while the previous one writes; more would only queue on the
# pipeline lock (and an unbounded pool starts a thread per batch).
@flow(name="generate-dataset", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def generate_dataset(
    config: GenerationConfig,
    out: str,
    retries: int | None = None,
    retry_delay_seconds: float | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    regenerate_changed: bool = False,
) -> DatasetRef:
    """Generate the synthetic dataset of `config` into `out`, resuming whatever is there.

    Steps: 1. lock `out` and plan fixed batches (repairing crash leftovers), 2. run one task per
    batch (finished batches come back from Prefect's cache; incomplete ones always run),
    3. verify every planned image and regenerate any still missing, 4. publish the report.

    Shards (several workers on one dataset): with `shard_count` > 1 this run takes only the
    batches numbered `shard_index` modulo `shard_count`, beside the other shards' runs, and
    plans, repairs and verifies only those (see synth/generation/plan.py); the run that finds
    the whole dataset complete writes `dataset.json`. All shards of a dataset use the same
    `shard_count`. `retries` and `retry_delay_seconds` override the batch task's own policy
    (tasks/retries.py) only when given.

    Images already in `out` that were made with other settings than `config` plans stop the
    run in step 1 with a `DatasetDriftError` naming each changed field, unless
    `regenerate_changed`: then exactly those images are generated again and the rest are kept.
    """
    start = time.perf_counter()
    out = str(Path(out).resolve())
    shard = Shard(shard_index, shard_count)
    with DatasetLock(Path(out), shard=(shard.index, shard.count)):
        # Step 1: plan
        plan = plan_generation(config, out, shard, regenerate_changed)
        print(f"{plan.missing} of {plan.total} images to generate in {out}; repairs {plan.repairs}")
        overrides = {"retries": retries, "retry_delay_seconds": retry_delay_seconds}
        batch_task = generate_images.with_options(
            **{k: v for k, v in overrides.items() if v is not None}
        )
        # Step 2: one task per batch
        progress = StepProgress(len(plan.batches), "generation-progress", "Batches finished")
        futures = [
            batch_task.with_options(refresh_cache=b.number in plan.incomplete).submit(
                config, out, b
            )
            for b in plan.batches
        ]
        results, failures = [], []
        for future in as_completed(futures):  # wait for all: finished batches are never wasted
            try:
                result = future.result()
                if future.state.name != "Cached":  # a cached batch generated nothing now
                    results.append(result)
            except Exception as exc:
                failures.append(exc)
            progress.advance()
        if failures:
            raise failures[0]
        # Step 3: verify; a stale cache hit or a lost file is regenerated here
        ref, missing = verify_dataset(config, out, shard)
        if missing:
            print(f"{len(missing)} images missing after the batches; regenerating them")
            repair = BatchSpec(number=plan.batches[-1].number + 1, items=missing)
            results.append(batch_task.with_options(refresh_cache=True)(config, out, repair))
            ref, missing = verify_dataset(config, out, shard)
            if missing:
                raise RuntimeError(f"{len(missing)} images still missing from {out}")
    # Step 4: report
    publish_generation_report(ref, results, time.perf_counter() - start)
    return ref
