"""The generation engine without Prefect: determinism, batch-size independence, OOM halving."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.generation import (
    dataset_digest,
    generate_batch,
    manifest_path,
    model_info,
    pipeline_for,
    prepare_output,
    read_manifest,
    read_verified_rows,
    scan_dataset,
    split_batches,
    verify_dataset,
)
from tests.helpers import assert_dataset_intact


def _generate_all(config, root: Path):
    state = prepare_output(root, config, model_info(config))
    results = [
        generate_batch(config, root, b)
        for b in split_batches(list(state.missing), config.batch_size)
    ]
    return scan_dataset(root, config), results


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "train").rglob("*.png")}


def test_generate_same_config_twice_gives_byte_identical_datasets(tmp_path, tiny_config):
    a, _ = _generate_all(tiny_config, tmp_path / "a")
    b, _ = _generate_all(tiny_config, tmp_path / "b")
    assert a.counts == {"apple": 6, "banana": 6}
    assert a.digest == b.digest
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert_dataset_intact(tmp_path / "a", {"apple": 6, "banana": 6})


def test_generate_batch_size_does_not_change_seeds_prompts_or_pixels(tmp_path, tiny_config):
    _generate_all(tiny_config, tmp_path / "b4")
    _generate_all(tiny_config.model_copy(update={"batch_size": 1}), tmp_path / "b1")
    rows4 = {r.file_name: r for r in read_manifest(manifest_path(tmp_path / "b4"))}
    rows1 = {r.file_name: r for r in read_manifest(manifest_path(tmp_path / "b1"))}
    assert rows4.keys() == rows1.keys()
    for name, row in rows4.items():
        assert (row.seed, row.prompt) == (rows1[name].seed, rows1[name].prompt)
        a = np.asarray(Image.open(tmp_path / "b4" / "train" / name), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "b1" / "train" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= 2, name  # batched matmuls may round differently


def test_generate_rerun_of_complete_dataset_generates_nothing(tmp_path, tiny_config):
    _generate_all(tiny_config, tmp_path)
    state, results = _generate_all(tiny_config, tmp_path)
    assert results == [] and not state.missing


def test_generate_batch_halves_on_out_of_memory_and_keeps_the_dataset(
    tmp_path, tiny_config, monkeypatch
):
    clean, _ = _generate_all(tiny_config, tmp_path / "clean")
    monkeypatch.setenv("DATASYNTH_FAULTS", "oom=2")
    from synth import faults

    faults._hits.clear()
    oomed, results = _generate_all(tiny_config, tmp_path / "oom")
    assert sum(r.oom_splits for r in results) == 2
    # Same images (names, seeds, prompts); halved batches may round a pixel differently, as
    # kernels differ by batch shape: see docs/RELIABILITY.md.
    assert oomed.rows.keys() == clean.rows.keys()
    for name, row in clean.rows.items():
        assert (row.seed, row.prompt) == (oomed.rows[name].seed, oomed.rows[name].prompt)
        a = np.asarray(Image.open(tmp_path / "clean" / "train" / name), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "oom" / "train" / name), dtype=np.int16)
        assert np.abs(a - b).max() <= 2, name


class _OutOfMemoryAbove:
    """The real pipeline, except that a call with more than `limit` images runs out of memory,
    as a GPU too small for the batch does."""

    def __init__(self, pipe, limit: int):
        self.pipe, self.limit, self.calls = pipe, limit, []

    def __call__(self, **kwargs):
        self.calls.append(len(kwargs["prompt"]))
        if len(kwargs["prompt"]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (test: batch too large)")
        return self.pipe(**kwargs)


def test_generate_keeps_the_halved_batch_size_for_the_rest_of_the_run(
    tmp_path, tiny_config, monkeypatch, caplog
):
    loaded = pipeline_for(tiny_config)
    pipe = _OutOfMemoryAbove(loaded.pipe, limit=2)
    monkeypatch.setattr(loaded, "pipe", pipe)
    state, results = _generate_all(tiny_config, tmp_path)  # 12 images in 3 batches of 4
    # one failed call of 4, then calls of 2 only: later batches do not run out of memory again
    assert pipe.calls == [4, 2, 2, 2, 2, 2, 2]
    assert [(r.oom_splits, r.fitting_batch_size) for r in results] == [(1, 2), (0, 2), (0, 2)]
    assert "batches of at most 2 for the rest of this run" in caplog.text
    assert not state.missing


class _SafetyCheckerFlags:
    """The real pipeline with a safety checker's verdict: the image at `position` of the first
    call is flagged and comes back black, as SD 1.5's checker returns it."""

    def __init__(self, pipe, position: int):
        self.pipe, self.position, self.calls = pipe, position, 0

    def __call__(self, **kwargs):
        out = self.pipe(**kwargs)
        flags = [self.calls == 0 and i == self.position for i in range(len(out.images))]
        if any(flags):
            out.images[self.position] = Image.new("RGB", out.images[0].size)
        out.nsfw_content_detected = flags
        self.calls += 1
        return out


def test_generate_records_and_excludes_an_image_the_safety_checker_flags(
    tmp_path, tiny_config, monkeypatch
):
    loaded = pipeline_for(tiny_config)
    monkeypatch.setattr(loaded, "pipe", _SafetyCheckerFlags(loaded.pipe, position=1))
    state, results = _generate_all(tiny_config, tmp_path)
    flagged = "apple/000001.png"
    assert [r.nsfw for r in results] == [1, 0, 0]
    assert state.rows[flagged].excluded == "nsfw" and not state.missing
    assert [r.file_name for r in state.excluded] == [flagged]
    assert state.counts == {"apple": 5, "banana": 6}  # never counted as an apple
    # done: a rerun regenerates nothing, and the dataset is complete without it
    assert _generate_all(tiny_config, tmp_path)[1] == []
    ref, missing = verify_dataset(tmp_path, tiny_config)
    assert missing == () and ref.images == 11
    summary = json.loads((tmp_path / "dataset.json").read_text())
    assert (summary["images"], summary["excluded"]) == (11, {"nsfw": 1})
    rows = read_verified_rows(tmp_path)  # what training and the quality gate read
    assert flagged not in {r.file_name for r in rows} and len(rows) == 11
    assert ref.digest == dataset_digest(rows)


def test_an_orphaned_flagged_image_is_adopted_as_excluded(tmp_path, tiny_config, monkeypatch):
    """A crash between the black PNG and its row: the PNG itself says it is excluded."""
    loaded = pipeline_for(tiny_config)
    monkeypatch.setattr(loaded, "pipe", _SafetyCheckerFlags(loaded.pipe, position=1))
    _generate_all(tiny_config, tmp_path)
    kept = [r for r in read_manifest(manifest_path(tmp_path)) if not r.excluded]
    manifest_path(tmp_path).write_text("".join(r.to_json() + "\n" for r in kept))
    state = prepare_output(tmp_path, tiny_config, model_info(tiny_config))
    assert state.repairs["orphans_adopted"] == 1 and not state.missing
    assert [(r.file_name, r.excluded) for r in state.excluded] == [("apple/000001.png", "nsfw")]
    assert state.counts == {"apple": 5, "banana": 6}


def test_generate_batch_resumes_a_half_written_batch(tmp_path, tiny_config, monkeypatch):
    from synth import faults

    monkeypatch.setenv("DATASYNTH_FAULTS", "partial=1.0,seed=3")
    faults._hits.clear()
    state = prepare_output(tmp_path, tiny_config, model_info(tiny_config))
    batch = split_batches(list(state.missing), 4)[0]
    with pytest.raises(faults.InjectedFault):
        generate_batch(tiny_config, tmp_path, batch)
    written = len(read_manifest(manifest_path(tmp_path)))
    monkeypatch.delenv("DATASYNTH_FAULTS")
    result = generate_batch(tiny_config, tmp_path, batch)
    assert (result.skipped, result.generated) == (written, 4 - written)


def test_generate_batch_transient_fault_writes_nothing_and_retry_is_identical(
    tmp_path, tiny_config, monkeypatch
):
    from synth import faults

    clean, _ = _generate_all(tiny_config, tmp_path / "clean")
    monkeypatch.setenv("DATASYNTH_FAULTS", "transient=1.0,seed=1")
    faults._hits.clear()
    state = prepare_output(tmp_path / "f", tiny_config, model_info(tiny_config))
    batches = split_batches(list(state.missing), tiny_config.batch_size)
    with pytest.raises(faults.InjectedFault, match="denoising step"):
        generate_batch(tiny_config, tmp_path / "f", batches[0])
    assert read_manifest(manifest_path(tmp_path / "f")) == []
    monkeypatch.delenv("DATASYNTH_FAULTS")
    for batch in batches:
        generate_batch(tiny_config, tmp_path / "f", batch)
    assert scan_dataset(tmp_path / "f", tiny_config).digest == clean.digest


def test_prepare_output_repairs_crash_leftovers(tmp_path, tiny_config):
    _generate_all(tiny_config, tmp_path)
    split = tmp_path / "train"
    rows = read_manifest(manifest_path(tmp_path))
    # an image renamed but never counted, a torn row, a temp file, a corrupted image
    lines = manifest_path(tmp_path).read_text().splitlines(keepends=True)
    manifest_path(tmp_path).write_text("".join(lines[:-1]) + lines[-1][:20])
    (split / "apple" / ".000001.png.tmp-999").write_bytes(b"half")
    (split / rows[0].file_name).write_bytes(b"not the image it was")
    state = prepare_output(tmp_path, tiny_config, model_info(tiny_config))
    assert state.repairs == {
        "torn_manifest_bytes": 20,
        "temp_files_removed": 1,
        "stale_rows_dropped": 1,
        "orphans_adopted": 1,  # its PNG says it is the planned image (the torn row's)
        "orphans_regenerated": 0,
        "changed_to_regenerate": 0,
    }
    assert [p.file_name for p in state.missing] == [rows[0].file_name]
    assert not (split / rows[0].file_name).exists()
