"""The generate_dataset flow on a real Prefect server: artifacts, caching, retries, locking."""

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.generate import generate_dataset
from synth.errors import DatasetLockedError
from synth.lock import DatasetLock
from tests.helpers import assert_dataset_intact, file_ids

pytestmark = pytest.mark.usefixtures("prefect_server")


def _run(config, out: Path, **kwargs):
    state = generate_dataset(config, str(out), retry_delay_seconds=0, return_state=True, **kwargs)
    return state.result(), state.state_details.flow_run_id


def _artifacts(flow_run_id):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def _task_states(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [r.state.name for r in runs if r.name.startswith("generate-batch")]


def test_generate_dataset_publishes_artifacts_and_caches_batches(tmp_path, tiny_config):
    ref, run_id = _run(tiny_config, tmp_path)
    assert ref.counts == {"apple": 6, "banana": 6} and ref.images == 12
    assert (tmp_path / "dataset.json").is_file()
    assert_dataset_intact(tmp_path, {"apple": 6, "banana": 6})
    artifacts = _artifacts(run_id)
    assert {"generation-summary", "generation-samples", "generation-progress"} <= set(artifacts)
    table = artifacts["generation-summary"].data
    assert "apple" in str(table) and "images_per_s" in str(table)
    assert "data:image/png;base64," in artifacts["generation-samples"].data
    assert float(artifacts["generation-progress"].data) == 100.0

    before = file_ids(tmp_path)
    ref2, run2 = _run(tiny_config, tmp_path)
    assert ref2.digest == ref.digest and file_ids(tmp_path) == before
    assert set(_task_states(run2)) == {"Cached"}  # Prefect itself skipped every batch


def test_generate_dataset_regenerates_deleted_files_despite_the_cache(tmp_path, tiny_config):
    ref, _ = _run(tiny_config, tmp_path)
    _run(tiny_config, tmp_path)  # batches are now cached
    before = file_ids(tmp_path)
    for name in ("apple/000002.png", "banana/000005.png"):
        (tmp_path / "train" / name).unlink()
    ref3, _ = _run(tiny_config, tmp_path)
    after = file_ids(tmp_path)
    assert ref3.images == ref.images
    assert_dataset_intact(tmp_path, {"apple": 6, "banana": 6})
    rewritten = {n for n in after if before.get(n) != after[n]}
    assert rewritten == {"apple/000002.png", "banana/000005.png"}


def test_generate_dataset_retries_transient_faults_to_the_same_dataset(
    tmp_path, tiny_config, monkeypatch
):
    clean, _ = _run(tiny_config, tmp_path / "clean")
    monkeypatch.setenv("DATASYNTH_FAULTS", "transient=0.5,seed=11")
    faulty, run_id = _run(tiny_config, tmp_path / "faulty", retries=10)
    assert faulty.digest == clean.digest
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    assert max(r.run_count for r in runs if r.name.startswith("generate-batch")) > 1
    clean_files = {
        p.relative_to(tmp_path / "clean"): p.read_bytes()
        for p in (tmp_path / "clean").rglob("*.png")
    }
    faulty_files = {
        p.relative_to(tmp_path / "faulty"): p.read_bytes()
        for p in (tmp_path / "faulty").rglob("*.png")
    }
    assert clean_files == faulty_files  # byte-identical


def test_generate_dataset_refuses_a_second_concurrent_run(tmp_path, tiny_config):
    with DatasetLock(tmp_path), pytest.raises(DatasetLockedError, match="another datasynth run"):
        generate_dataset(tiny_config, str(tmp_path))
    assert not (tmp_path / "train").exists()
