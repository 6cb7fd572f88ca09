"""Injected faults: transient errors, half-written batches, CUDA OOM, disk full, read-only output.

Engine-level tests run synth in this process (fast, default suite); the flow-level ones run the
`generate-dataset` flow on the session Prefect server with its real task retries (heavy).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from flows.generate import generate_dataset
from synth import faults
from synth.config import GenerationConfig
from synth.generation import (
    ManifestRow,
    append_rows,
    generate_batch,
    model_info,
    plan_images,
    prepare_output,
    read_manifest,
    split_batches,
)
from tests.reliability.audit import audit, compare_to_reference, final_images
from tests.reliability.disk import read_only, tree
from tests.reliability.engine import record, run_engine

RATES = (0.1, 0.3, 0.5)


@pytest.fixture
def faulty(monkeypatch):
    """Set DATASYNTH_FAULTS for this process, with fresh hit counters."""

    def set_faults(spec: str | None) -> None:
        faults._hits.clear()
        if spec is None:
            monkeypatch.delenv("DATASYNTH_FAULTS", raising=False)
        else:
            monkeypatch.setenv("DATASYNTH_FAULTS", spec)

    yield set_faults
    faults._hits.clear()


def _small(model_dir: Path) -> GenerationConfig:
    """2 classes x 4 images in batches of 2, 3 steps: 4 batches, so faults have room to land."""
    return GenerationConfig(
        classes=["apple", "banana"],
        images_per_class=4,
        model=str(model_dir),
        steps=3,
        width=64,
        height=64,
        batch_size=2,
        seed=7,
    )


@pytest.fixture
def small_config(tiny_model_dir) -> GenerationConfig:
    return _small(tiny_model_dir)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, tiny_model_dir) -> Path:
    """A fault-free run of `small_config`, shared by this module."""
    out = tmp_path_factory.mktemp("clean") / "ds"
    run_engine(_small(tiny_model_dir), out)
    return out


def run_with_retries(config: GenerationConfig, out: Path, attempts: int = 20) -> int:
    """The engine with a retry loop per batch, as the flow's task retries do; returns faults."""
    prepare_output(out, config, model_info(config))
    failures = 0
    for batch in split_batches(plan_images(config), config.batch_size):
        for _ in range(attempts):
            try:
                generate_batch(config, out, batch)
                break
            except faults.InjectedFault:
                failures += 1
        else:
            raise AssertionError(f"batch {batch[0].file_name} failed {attempts} times")
    run_engine(config, out)  # writes dataset.json; generates nothing more
    return failures


def png_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.png")}


# ------------------------------------------------------------------------ transient and partial


@pytest.mark.parametrize("rate", RATES)
def test_transient_faults_retried_give_a_byte_identical_dataset(
    tmp_path, small_config, clean_run, faulty, rate
):
    faulty(f"transient={rate},seed=17")
    failures = run_with_retries(small_config, tmp_path / "faulty")
    faulty(None)
    figures = audit(tmp_path / "faulty", small_config)
    assert not figures.problems(), figures
    assert png_bytes(tmp_path / "faulty") == png_bytes(clean_run)
    record("engine-transient", rate=rate, faults=failures, **asdict(figures))


def test_partial_batch_faults_resume_the_batch_without_redoing_images(
    tmp_path, small_config, clean_run, faulty
):
    """A batch that fails after writing some images: its retry generates only the rest."""
    faulty("partial=0.5,seed=4")
    failures = run_with_retries(small_config, tmp_path / "faulty")
    faulty(None)
    figures = audit(tmp_path / "faulty", small_config)
    same = compare_to_reference(tmp_path / "faulty", clean_run)
    assert failures > 0 and not figures.problems(), figures
    # The rest of a half-done batch is generated in a smaller call: pixels may differ by
    # a rounding step (docs/RELIABILITY.md); names, seeds and prompts may not.
    assert same.same_images and same.max_pixel_diff <= 2, same


# ----------------------------------------------------------------------------------- disk full


@pytest.mark.parametrize(("nth", "what"), [(5, "image"), (6, "manifest")])
def test_disk_full_fails_clearly_keeps_manifest_valid_and_resumes(
    tmp_path, small_config, clean_run, faulty, nth, what
):
    """Writes alternate image, row, image, ...: the 5th is an image, the 6th a manifest row."""
    out = tmp_path / "full"
    faulty(f"enospc={nth}")
    with pytest.raises(OSError) as info:
        run_engine(small_config, out)
    faulty(None)
    assert info.value.errno == errno.ENOSPC
    assert str(out) in str(info.value), f"the error should name the file: {info.value}"
    crashed = audit(out, small_config, finished=False)
    assert not crashed.problems() and crashed.counted == (nth - 1) // 2, crashed
    before = final_images(out)
    run_engine(small_config, out)  # space is back
    figures = audit(out, small_config, before)
    assert not figures.problems(), figures
    same = compare_to_reference(out, clean_run)
    assert same.same_images and same.max_pixel_diff <= 2, same
    record("engine-enospc", what=what, nth=nth, message=str(info.value), **asdict(figures))


def _row(i: int) -> ManifestRow:
    return ManifestRow(
        **{f.name: 0 if f.type == "int" else "x" for f in dataclasses.fields(ManifestRow)}
        | {"file_name": f"apple/{i:06d}.png", "index": i, "guidance_scale": 1.0}
    )


def test_append_after_a_torn_row_does_not_weld_onto_it(tmp_path):
    """A writer that died mid-row (another shard, or this process on a full disk) left a tail."""
    path = tmp_path / "metadata.jsonl"
    append_rows(path, [_row(0)])
    with open(path, "ab") as fh:
        fh.write(_row(1).to_json().encode()[:50])
    append_rows(path, [_row(2)])
    assert [r.index for r in read_manifest(path)] == [0, 2]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_append_that_hits_a_full_disk_mid_row_is_rolled_back(tmp_path, monkeypatch):
    path = tmp_path / "metadata.jsonl"
    append_rows(path, [_row(0)])
    real_write = os.write

    def full_after_20_bytes(fd, data):
        real_write(fd, bytes(data[:20]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("synth.generation.manifest.os.write", full_after_20_bytes)
    with pytest.raises(OSError, match="metadata.jsonl"):
        append_rows(path, [_row(1)])
    monkeypatch.undo()
    assert path.read_bytes().endswith(b"\n") and [r.index for r in read_manifest(path)] == [0]


# ----------------------------------------------------------------------------------- read-only


def test_read_only_output_fails_naming_the_path_and_writes_nothing(tmp_path, small_config):
    out = tmp_path / "ro"
    out.mkdir()
    with read_only(out), pytest.raises(PermissionError) as info:
        run_engine(small_config, out)
    assert str(out) in str(info.value)
    assert tree(out) == {}


def test_read_only_partial_dataset_is_left_intact_and_resumes_once_writable(
    tmp_path, small_config, clean_run
):
    out = tmp_path / "ro"
    run_engine(small_config.model_copy(update={"images_per_class": 3}), out)
    snapshot = tree(out)
    with read_only(out), pytest.raises(PermissionError) as info:
        run_engine(small_config, out)
    assert str(out) in str(info.value)
    assert tree(out) == snapshot
    before = final_images(out)
    run_engine(small_config, out)
    figures = audit(out, small_config, before)
    assert not figures.problems(), figures
    assert compare_to_reference(out, clean_run).same_images


# ---------------------------------------------------------------------- the flow (Prefect retries)


def _flow(config: GenerationConfig, out: Path, retries: int = 10):
    state = generate_dataset(
        config, str(out), retries=retries, retry_delay_seconds=0, return_state=True
    )
    return state.result(), state.state_details.flow_run_id


def _task_attempts(flow_run_id) -> int:
    """Runs of all generate-batch tasks of a flow run beyond the first of each."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sum(r.run_count - 1 for r in runs if r.name.startswith("generate-batch"))


@pytest.mark.heavy
@pytest.mark.timeout(2400)
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("rate", RATES)
def test_flow_retries_transient_faults_to_a_byte_identical_dataset(
    tmp_path, small_config, faulty, rate
):
    config = small_config.model_copy(update={"images_per_class": 8, "batch_size": 2})
    reference = tmp_path / "reference"
    run_engine(config, reference)
    retried, runs = 0, 3
    for seed in range(runs):
        faulty(f"transient={rate},seed={seed}")
        out = tmp_path / f"faulty-{seed}"
        ref, run_id = _flow(config, out)
        faulty(None)
        retried += _task_attempts(run_id)
        figures = audit(out, config)
        assert not figures.problems(), figures
        assert png_bytes(out) == png_bytes(reference)
        assert ref.images == 16
    record("flow-transient", rate=rate, runs=runs, images=16 * runs, retries=retried)
    assert rate < 0.3 or retried > 0


@pytest.mark.heavy
@pytest.mark.timeout(2400)
@pytest.mark.usefixtures("prefect_server")
def test_flow_halves_batches_on_out_of_memory(tmp_path, small_config, clean_run, faulty):
    faulty("oom=3")
    ref, _ = _flow(small_config, tmp_path / "oom")
    faulty(None)
    figures = audit(tmp_path / "oom", small_config)
    same = compare_to_reference(tmp_path / "oom", clean_run)
    assert not figures.problems() and ref.images == 8, figures
    assert same.same_images and same.max_pixel_diff <= 2, same
    record("flow-oom", oom=3, **asdict(figures), **asdict(same))


@pytest.mark.heavy
@pytest.mark.timeout(2400)
@pytest.mark.usefixtures("prefect_server")
def test_flow_retries_partial_batches_without_redoing_images(
    tmp_path, small_config, clean_run, faulty
):
    faulty("partial=0.5,seed=9")
    ref, run_id = _flow(small_config, tmp_path / "partial")
    faulty(None)
    figures = audit(tmp_path / "partial", small_config)
    same = compare_to_reference(tmp_path / "partial", clean_run)
    assert not figures.problems() and ref.images == 8, figures
    assert same.same_images and same.max_pixel_diff <= 2, same
    record("flow-partial", rate=0.5, retries=_task_attempts(run_id), **asdict(same))
