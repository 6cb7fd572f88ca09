"""The quality gate in the DAG: which model scores, what training receives, what is keyed.

A 2-class x 3-image dataset from the tiny pipeline (32 px, 2 steps) and a real-only StudyCNN
trained for one epoch on 16 px colour squares: its scores are arbitrary but deterministic, which
is all these tests need (tests/test_quality_gate.py checks that the scores mean something).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from synth.config import GenerationConfig, PreprocessConfig, QualityConfig, RecipeConfig
from synth.config import TrainConfig as Train
from synth.data import preprocess_synthetic
from synth.data.preprocess import PreprocessItem, build_tensor_set, load_tensor_set
from synth.data.quality_gate import gate_verified_rows, quality_path
from synth.errors import InputError
from synth.generation import (
    generate_batch,
    prepare_output,
    read_verified_rows,
    scan_dataset,
    split_batches,
    write_summary,
)
from synth.reporting.quality_section import quality_dict, quality_section
from synth.storage import encode_png
from synth.training import gate_recipe, load_checkpoint, train_checkpoint, uses_synthetic

CLASSES = ("apple", "pear")
PRE = PreprocessConfig(size=16)
TOP_HALF = QualityConfig(top_fraction=0.5, dedupe_threshold=None, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_model_dir) -> tuple[Path, str]:
    """A verified synthetic dataset and its digest."""
    config = GenerationConfig(
        classes=list(CLASSES),
        images_per_class=3,
        model=str(tiny_model_dir),
        steps=2,
        width=32,
        height=32,
        batch_size=6,
        seed=5,
        device="cpu",
    )
    root = tmp_path_factory.mktemp("gate") / "synthetic"
    state = prepare_output(root, config)
    for batch in split_batches(list(state.missing), config.batch_size):
        generate_batch(config, root, batch)
    done = scan_dataset(root, config)
    write_summary(root, config, done)
    return root, done.digest


@pytest.fixture(scope="module")
def real_train(tmp_path_factory) -> tuple:
    """A real train tensor set of red and green squares (the classes' own colours)."""
    folder = tmp_path_factory.mktemp("real")
    items = []
    for i in range(8):
        label = i % 2
        path = folder / f"{i}.png"
        path.write_bytes(encode_png(_square((200, 30, 30) if label == 0 else (30, 200, 30), i)))
        items.append(PreprocessItem(str(path), label, f"{i:064x}", False))
    return build_tensor_set(items, folder / "real.pt", PRE), folder


def _square(colour, i):
    return Image.new("RGB", (20 + i, 24), colour)


@pytest.fixture(scope="module")
def scorer(real_train):
    tensors, folder = real_train
    recipe = RecipeConfig(name="real", kind="real")
    config = Train(epochs=1, batch_size=8, device="cpu")
    return train_checkpoint(recipe, 0, tensors, None, config, CLASSES, folder, preprocess=PRE)


def test_real_only_recipes_take_no_synthetic_set():
    kinds = {
        ("real", "none"): False,
        ("real-augmented", "none"): False,
        ("shots", "none"): False,
        ("shots", "all"): True,
        ("synthetic", "none"): True,
        ("mix", "none"): True,
        ("pretrain-finetune", "none"): True,
    }
    for (kind, shots), expected in kinds.items():
        recipe = RecipeConfig(name="r", kind=kind, shots_synthetic=shots)
        assert uses_synthetic(recipe) is expected, kind


def test_gate_scores_with_the_baseline_real_recipe_or_one_of_its_own():
    a, b = RecipeConfig(name="a", kind="real"), RecipeConfig(name="b", kind="real")
    syn = RecipeConfig(name="syn", kind="synthetic")
    assert gate_recipe([syn, a, b], baseline="b") is b
    assert gate_recipe([syn, a, b], baseline="syn") is a
    assert gate_recipe([syn], baseline="syn") == RecipeConfig(name="quality-gate", kind="real")


def test_a_synthetic_recipe_without_a_synthetic_set_is_refused_by_name(real_train, scorer):
    tensors, folder = real_train
    recipe = RecipeConfig(name="syn-only", kind="synthetic")
    with pytest.raises(InputError, match="'syn-only'.*needs synthetic images, got none"):
        train_checkpoint(recipe, 0, tensors, None, Train(epochs=1, device="cpu"), CLASSES, folder)
    assert load_checkpoint(scorer.path)[1].synthetic_images == 0


def test_gate_decisions_are_deterministic_recorded_and_filter_training(
    dataset, real_train, scorer, tmp_path
):
    root, digest = dataset
    first = gate_verified_rows(root, digest, scorer.path, TOP_HALF, preprocess_config=PRE)
    recorded = quality_path(root).read_bytes()
    again = gate_verified_rows(root, digest, scorer.path, TOP_HALF, preprocess_config=PRE)
    assert again == first and quality_path(root).read_bytes() == recorded
    assert len(recorded.splitlines()) == 6 and first.path == str(quality_path(root))
    # top half of each class of 3: ceil(1.5) = 2 kept, 1 dropped
    assert first.kept_per_class == {"apple": 2, "pear": 2}
    assert first.dropped_per_class == {"apple": 1, "pear": 1}

    cache = tmp_path / "cache"
    every = preprocess_synthetic(root, digest, CLASSES, PRE, cache)
    gated = preprocess_synthetic(root, digest, CLASSES, PRE, cache, kept=first.kept)
    assert (every.count, gated.count) == (6, 4) and gated.path != every.path
    rows = read_verified_rows(root)
    kept_sha = {r.sha256 for r in rows if r.file_name in first.kept}
    assert set(load_tensor_set(gated.path).keys) == kept_sha

    # a recipe trains on exactly the pool it is given
    recipe = RecipeConfig(name="synthetic", kind="synthetic")
    config = Train(epochs=1, batch_size=8, device="cpu")
    ckpt = train_checkpoint(recipe, 0, real_train[0], gated, config, CLASSES, tmp_path)
    info = load_checkpoint(ckpt.path)[1]
    assert (info.real_images, info.synthetic_images) == (0, 4)
    assert {r.sha256 for r in rows if info.trained_on(r.sha256)} == kept_sha


def test_gate_off_keeps_every_image_in_the_ungated_file(dataset, scorer, tmp_path):
    root, digest = dataset
    off = TOP_HALF.model_copy(update={"enabled": False})
    report = gate_verified_rows(root, digest, scorer.path, off, preprocess_config=PRE)
    assert (len(report.kept), report.dropped) == (6, ())
    assert report.reason_counts["not_top_fraction"] == 2  # still scored and recorded
    cache = tmp_path / "cache"
    every = preprocess_synthetic(root, digest, CLASSES, PRE, cache)
    assert preprocess_synthetic(root, digest, CLASSES, PRE, cache, kept=report.kept) == every
    # the report shows what the gate would drop, and says the gate is off
    section = quality_section(report)
    assert "The gate is off" in section.paragraphs[0] and section.images
    assert quality_dict(report)["dropped"] == 0


def test_kept_names_from_another_dataset_are_refused(dataset, tmp_path):
    root, digest = dataset
    with pytest.raises(ValueError, match="not verified rows of this dataset"):
        preprocess_synthetic(root, digest, CLASSES, PRE, tmp_path, kept=("plum/000000.png",))


def test_real_only_checkpoints_do_not_depend_on_the_synthetic_set(real_train, scorer):
    tensors, folder = real_train
    again = train_checkpoint(
        RecipeConfig(name="real", kind="real"), 0, tensors, None,
        Train(epochs=1, batch_size=8, device="cpu"), CLASSES, folder, preprocess=PRE,
    )  # fmt: skip
    assert again.path == scorer.path  # named by its inputs, and no synthetic set is one
