"""Provenance-bound images: a finished image counts only while its row matches the plan.

A config-drift matrix over every field that decides pixels: a change stops the resume step
with one error naming the field and how many images it affects, and `regenerate_changed`
redoes exactly those images while the others keep their bytes, inode and mtime. Then growing,
shrinking, duplicate rows, orphans and old manifests. All on the tiny pipeline: 4 images of
32x32 in 2 steps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from synth.config import GenerationConfig, PreprocessConfig
from synth.data import preprocess_synthetic, synthetic_items
from synth.errors import DatasetDriftError, InputError
from synth.generation import (
    PROVENANCE_FIELDS,
    ManifestRow,
    PlannedImage,
    changed_fields,
    dataset_digest,
    generate_batch,
    manifest_path,
    plan_images,
    prepare_output,
    read_manifest,
    read_verified_rows,
    save_tiny_pipeline,
    scan_dataset,
    split_batches,
    write_summary,
)

APPLE = {"apple/000000.png", "apple/000001.png"}
INDEX_1 = {"apple/000001.png", "pear/000001.png"}
ALL = APPLE | {"pear/000000.png", "pear/000001.png"}


def _generate(root: Path, config: GenerationConfig, **kwargs):
    """The engine as the flow runs it: prepare, every incomplete batch, verify, dataset.json."""
    state = prepare_output(root, config, **kwargs)
    for batch in split_batches(list(state.missing), config.batch_size):
        generate_batch(config, root, batch)
    done = scan_dataset(root, config)
    if not done.missing:
        write_summary(root, config, done)
    return state, done


def _with(config: GenerationConfig, **changes) -> GenerationConfig:
    """`config` with `changes`, validated (model_copy would not validate them)."""
    return GenerationConfig.model_validate({**config.model_dump(), **changes})


def _ids(root: Path) -> dict[str, tuple[int, int, str]]:
    """file -> (inode, mtime_ns, sha256) of every PNG under train/."""
    split = root / "train"
    return {
        p.relative_to(split).as_posix(): (
            p.stat().st_ino,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in split.rglob("*.png")
    }


@pytest.fixture(scope="module")
def base_config(tiny_model_dir) -> GenerationConfig:
    """2 classes x 2 images; pear has its own prompt, so a template change touches apple only."""
    return GenerationConfig(
        classes=["apple", {"name": "pear", "prompts": ["a ripe pear"]}],
        images_per_class=2,
        contexts=("on a table",),
        model=str(tiny_model_dir),
        steps=2,
        width=32,
        height=32,
        batch_size=4,
        seed=3,
        device="cpu",
    )


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory, base_config) -> Path:
    root = tmp_path_factory.mktemp("base") / "ds"
    _generate(root, base_config)
    return root


@pytest.fixture
def dataset(tmp_path, base_dataset) -> Path:
    """A private copy of the base dataset (copy2 keeps mtimes; the test compares its own)."""
    return Path(shutil.copytree(base_dataset, tmp_path / "ds"))


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """The tiny pipeline built with another seed: same files and sizes, other weights."""
    return save_tiny_pipeline(tmp_path_factory.mktemp("other") / "tiny-seed-1", seed=1)


def _save_tiny_lora(model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA on the tiny UNet with seeded non-zero weights (a fresh one is a no-op)."""
    from diffusers import AutoPipelineForText2Image

    from synth.generation.lora import add_lora, save_lora

    pipe = AutoPipelineForText2Image.from_pretrained(str(model_dir))
    params = add_lora(pipe.unet, rank=2, alpha=2.0, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    save_lora(pipe, out)
    return out


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory, tiny_model_dir) -> Path:
    return _save_tiny_lora(tiny_model_dir, tmp_path_factory.mktemp("lora") / "lora", seed=0)


# (name, the config change, the images it affects, the fields the error must name)
DRIFT = [
    ("model", lambda r: {"model": str(r["other_model"])}, ALL, ["model", "model_revision"]),
    ("scheduler", lambda r: {"scheduler": "euler"}, ALL, ["scheduler"]),
    ("steps", lambda r: {"steps": 3}, ALL, ["steps"]),
    ("guidance_scale", lambda r: {"guidance_scale": 3.0}, ALL, ["guidance_scale"]),
    ("size", lambda r: {"width": 40, "height": 40}, ALL, ["width", "height"]),
    ("negative_prompt", lambda r: {"negative_prompt": "blurry"}, ALL, ["negative_prompt"]),
    ("prompt_template", lambda r: {"prompt_template": "a still life of a {name}"}, APPLE,
     ["prompt"]),
    ("seed", lambda r: {"seed": 4}, ALL, ["seed"]),
    ("contexts", lambda r: {"contexts": ("on a table", "in a crate")}, INDEX_1,
     ["prompt", "context"]),
    ("lora", lambda r: {"lora": str(r["lora"])}, ALL, ["lora_digest"]),
    ("dtype", lambda r: {"dtype": "bf16"}, ALL, ["dtype"]),
]  # fmt: skip


@pytest.fixture
def resources(other_model, tiny_lora) -> dict[str, Path]:
    return {"other_model": other_model, "lora": tiny_lora}


@pytest.mark.parametrize(
    ("change", "affected", "fields"), [d[1:] for d in DRIFT], ids=[d[0] for d in DRIFT]
)
def test_drift_is_refused_naming_the_field_then_regenerates_exactly_the_affected_images(
    dataset, base_config, resources, change, affected, fields
):
    config = _with(base_config, **change(resources))
    before = _ids(dataset)
    manifest = manifest_path(dataset).read_bytes()
    described = (dataset / "dataset.json").read_bytes()
    # 1. Refused before anything changes, naming each field and how many images it affects
    with pytest.raises(DatasetDriftError) as info:
        prepare_output(dataset, config)
    message = str(info.value)
    for field in fields:
        assert f"{field} " in message, message
    assert f"({len(affected)} images)" in message and "--regenerate-changed" in message
    assert f"these {len(affected)} images and keep the other {4 - len(affected)}" in message
    assert _ids(dataset) == before and manifest_path(dataset).read_bytes() == manifest
    assert (dataset / "dataset.json").read_bytes() == described
    # 2. regenerate_changed: exactly the affected images get new bytes (file, then a new row)
    state, done = _generate(dataset, config, regenerate_changed=True)
    assert state.repairs["changed_to_regenerate"] == len(affected)
    after = _ids(dataset)
    assert {n for n in after if after[n] != before[n]} == affected
    assert all(after[n][2] != before[n][2] for n in affected)  # the pixels really changed
    assert len(done.verified) == 4 and not done.changed and not done.missing
    assert len(read_manifest(manifest_path(dataset))) == 4 + len(affected)  # last row wins
    # 3. Done: a rerun generates nothing, compacts the superseded rows, and dataset.json agrees
    again, _ = _generate(dataset, config)
    assert not again.missing and again.repairs["stale_rows_dropped"] == len(affected)
    summary = json.loads((dataset / "dataset.json").read_text())
    assert summary["digest"] == scan_dataset(dataset, config).digest
    assert [r.file_name for r in read_verified_rows(dataset)] == sorted(ALL)


def test_lora_scale_and_lora_weights_changed_in_place_are_drift(tmp_path, base_config, tiny_lora):
    lora = Path(shutil.copytree(tiny_lora, tmp_path / "lora"))
    config = _with(base_config, lora=str(lora), images_per_class=1)
    _, first = _generate(tmp_path / "ds", config)
    with pytest.raises(DatasetDriftError, match=r"lora_scale 1\.0 → 0\.5 \(2 images\)"):
        prepare_output(tmp_path / "ds", _with(config, lora_scale=0.5))
    # refit into the same folder: same file name and size, other weights
    _save_tiny_lora(Path(base_config.model), lora, seed=1)
    with pytest.raises(DatasetDriftError, match=r"lora_digest 'sha256:.*\(2 images\)"):
        prepare_output(tmp_path / "ds", config)
    _, second = _generate(tmp_path / "ds", config, regenerate_changed=True)
    assert second.digest != first.digest  # the LoRA's digest is part of the dataset's


def test_growing_a_dataset_generates_only_the_new_images(dataset, base_config):
    before = _ids(dataset)
    classes = [*base_config.model_dump()["classes"], {"name": "plum"}]
    config = _with(base_config, images_per_class=3, classes=classes)
    state, done = _generate(dataset, config)
    assert {p.file_name for p in state.missing} == {
        "apple/000002.png",
        "pear/000002.png",
        *(f"plum/{i:06d}.png" for i in range(3)),
    }
    after = _ids(dataset)
    assert all(after[n] == before[n] for n in before)
    assert done.counts == {"apple": 3, "pear": 3, "plum": 3}


def test_shrinking_keeps_the_extra_images_out_of_counts_digest_and_training(dataset, base_config):
    config = _with(base_config, images_per_class=1)
    state, done = _generate(dataset, config)
    assert not state.missing and len(_ids(dataset)) == 4  # nothing deleted...
    assert done.counts == {"apple": 1, "pear": 1}  # ...but only the plan counts
    rows = read_verified_rows(dataset)
    assert [r.file_name for r in rows] == ["apple/000000.png", "pear/000000.png"]
    assert dataset_digest(rows) == done.digest
    items = synthetic_items(dataset, rows, ("apple", "pear"))
    assert [Path(i.path).name for i in items] == ["000000.png", "000000.png"]
    pre, classes = PreprocessConfig(size=16), ("apple", "pear")
    assert preprocess_synthetic(dataset, done.digest, classes, pre, dataset / "cache").count == 2
    summary = json.loads((dataset / "dataset.json").read_text())
    assert (summary["images"], summary["outside_plan"]) == (2, 2)


def test_duplicate_rows_enter_once(dataset, base_config):
    path = manifest_path(dataset)
    first = path.read_text().splitlines()[0]
    path.write_text(path.read_text() + first + "\n")  # the same row twice
    state = scan_dataset(dataset, base_config)
    assert len(state.verified) == 4
    rows = read_verified_rows(dataset)
    assert len(rows) == 4
    assert len(synthetic_items(dataset, [*rows, rows[0]], ("apple", "pear"))) == 4
    assert prepare_output(dataset, base_config).repairs["stale_rows_dropped"] == 1


def test_orphans_are_adopted_only_when_their_png_proves_the_plan(tmp_path, dataset, base_config):
    manifest_path(dataset).unlink()  # every image is now an orphan
    other = shutil.copytree(dataset, tmp_path / "other")
    state = prepare_output(dataset, base_config)
    assert state.repairs["orphans_adopted"] == 4 and not state.missing
    # made with 2 steps: never stamped with the 3 steps now planned
    state = prepare_output(other, _with(base_config, steps=3))
    assert state.repairs["orphans_adopted"] == 0 and state.repairs["orphans_regenerated"] == 4
    assert len(state.missing) == 4 and not list((other / "train").rglob("*.png"))


def test_an_orphan_without_provenance_is_generated_again(dataset, base_config):
    from PIL import Image

    rows = read_manifest(manifest_path(dataset))
    manifest_path(dataset).write_text("".join(r.to_json() + "\n" for r in rows[1:]))
    Image.new("RGB", (32, 32)).save(dataset / "train" / rows[0].file_name)  # no text chunk
    state, done = _generate(dataset, base_config)
    assert state.repairs["orphans_regenerated"] == 1
    assert [p.file_name for p in state.missing] == [rows[0].file_name]
    assert done.digest == scan_dataset(dataset, base_config).digest and len(done.verified) == 4


def test_old_manifest_rows_without_the_new_fields_still_count(tmp_path, base_config):
    config = _with(base_config, contexts=(), images_per_class=1)
    _, done = _generate(tmp_path, config)
    old = ("lora_digest", "lora_scale", "context", "strategy")
    lines = [json.loads(line) for line in manifest_path(tmp_path).read_text().splitlines()]
    manifest_path(tmp_path).write_text(
        "".join(json.dumps({k: v for k, v in row.items() if k not in old}) + "\n" for row in lines)
    )
    state = prepare_output(tmp_path, config)
    assert not state.missing and state.digest == done.digest


def test_read_verified_rows_refuses_files_changed_after_verification(dataset):
    pre, classes = PreprocessConfig(size=16), ("apple", "pear")
    with pytest.raises(InputError, match="changed since it was verified"):
        preprocess_synthetic(dataset, "0" * 64, classes, pre, dataset / "cache")  # another digest
    (dataset / "train" / "pear" / "000001.png").write_bytes(b"edited")
    with pytest.raises(InputError, match="changed since it was verified"):
        read_verified_rows(dataset)
    with pytest.raises(InputError, match="dataset.json"):
        read_verified_rows(dataset / "nowhere")


def test_dataset_digest_covers_each_rows_provenance(dataset):
    rows = read_manifest(manifest_path(dataset))
    relabelled = [dataclasses.replace(rows[0], lora_digest="sha256:" + "0" * 64), *rows[1:]]
    assert dataset_digest(relabelled) != dataset_digest(rows)


def test_plans_and_rows_share_every_provenance_field(base_config):
    planned = plan_images(base_config)[0]
    names = {f.name for f in dataclasses.fields(ManifestRow)}
    assert set(PROVENANCE_FIELDS) <= names
    assert set(PROVENANCE_FIELDS) <= {f.name for f in dataclasses.fields(PlannedImage)}
    assert "device" not in PROVENANCE_FIELDS  # a CPU and a GPU run ask for the same image
    assert changed_fields(planned, planned) == ()
    moved = dataclasses.replace(planned, steps=9, prompt="x")
    assert changed_fields(moved, planned) == ("steps", "prompt")
