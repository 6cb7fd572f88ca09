"""`datasynth evaluate`: a checkpoint scores a folder with its own preprocessing, on test/ by
default, and every mismatch is one clear line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flows.cli import main
from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.data import PreprocessItem, build_tensor_set, import_real_dataset, preprocess_real
from synth.errors import CheckpointError, InputError
from synth.evaluation import evaluate_checkpoint, evaluate_folder
from synth.training import load_checkpoint, train_checkpoint

# Apples are wide photos and pears tall ones, of the same grey noise: the class shows only in
# where the white bars are. Scored with the study's default black bars (what evaluate did
# before), the bars the model learned are gone, and so are its answers.
PRE = PreprocessConfig(size=16, padding="white", seed=1)
SHAPES = {"apple": (40, 20), "pear": (20, 40)}


def _photo(label: str, seed: int) -> Image.Image:
    width, height = SHAPES[label]
    pixels = np.random.default_rng(seed).integers(60, 190, (height, width, 3))
    return Image.fromarray(pixels.astype(np.uint8))


def _folder(root: Path, per_split: dict[str | None, int], labels=tuple(SHAPES)) -> Path:
    for split, n in per_split.items():
        for c, label in enumerate(labels):
            folder = root / split / label if split else root / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = 1000 * c + {"train": 0, "test": 100, None: 500}[split] + i
                _photo(label if label in SHAPES else "apple", seed).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real/ folder (train 6 + test 3 per class) and a 'real' checkpoint trained on it."""
    tmp = tmp_path_factory.mktemp("evaluate")
    data = _folder(tmp / "real", {"train": 6, "test": 3})
    dataset = import_real_dataset(data)
    cache = tmp / "cache"
    real_train = preprocess_real(dataset, "train", PRE, cache)
    syn_items = [PreprocessItem(e.path, 0, e.sha256, True) for e in dataset.split("train")[:2]]
    syn = build_tensor_set(syn_items, cache / "syn.pt", PRE)
    checkpoint = train_checkpoint(
        RecipeConfig(name="real", kind="real"),
        0,
        real_train,
        syn,
        TrainConfig(epochs=3, batch_size=4, device="cpu"),
        dataset.classes,
        tmp / "models",
        preprocess=PRE,
    )
    return data, dataset, checkpoint, preprocess_real(dataset, "test", PRE, cache)


def test_train_checkpoint_records_its_preprocessing_and_training_photos(trained):
    _, dataset, checkpoint, _ = trained
    _, info = load_checkpoint(checkpoint.path)
    assert info.preprocess == PRE and info.class_names == ("apple", "pear")
    assert all(info.trained_on(e.sha256) for e in dataset.split("train"))
    assert not any(info.trained_on(e.sha256) for e in dataset.split("test"))


def test_evaluate_folder_scores_test_split_as_the_run_does(trained):
    data, dataset, checkpoint, test_tensors = trained
    result = evaluate_folder(Path(checkpoint.path), data)
    assert (result["split"], result["images"], result["images_seen_in_training"]) == ("test", 6, 0)
    assert result["preprocess"] == PRE.model_dump(mode="json")
    # the same numbers as the flow's evaluate step on the run's own test tensors
    metrics = evaluate_checkpoint(checkpoint, test_tensors, "real-test").metrics
    assert {k: result[k] for k in metrics.summary()} == metrics.summary()
    assert result["per_class"] == [vars(c) for c in metrics.per_class]
    assert result["confusion"] == metrics.confusion


def test_evaluate_folder_split_all_and_train_count_the_training_photos(trained):
    data, _, checkpoint, _ = trained
    whole = evaluate_folder(Path(checkpoint.path), data, split="all")
    assert (whole["split"], whole["images"], whole["images_seen_in_training"]) == ("all", 18, 12)
    train = evaluate_folder(Path(checkpoint.path), data, split="train")
    assert (train["images"], train["images_seen_in_training"]) == (12, 12)


def test_evaluate_folder_without_split_folders_needs_split_all(trained, tmp_path):
    _, _, checkpoint, _ = trained
    flat = _folder(tmp_path / "flat", {None: 2})
    with pytest.raises(InputError, match="no train/ and test/ folders.*--split all"):
        evaluate_folder(Path(checkpoint.path), flat)
    result = evaluate_folder(Path(checkpoint.path), flat, split="all")
    assert (result["images"], result["images_seen_in_training"]) == (4, 0)


def test_evaluate_folder_refuses_mismatches_in_one_line(trained, tmp_path):
    data, _, checkpoint, _ = trained
    model = Path(checkpoint.path)
    with pytest.raises(InputError, match="`size` 32 differs from the 16 px"):
        evaluate_folder(model, data, 32)
    assert evaluate_folder(model, data, 16)["images"] == 6  # an equal size is only a check
    with pytest.raises(InputError, match="`split` must be one of test, train, all"):
        evaluate_folder(model, data, split="held-out")
    empty = _folder(tmp_path / "empty", {"train": 1})
    (empty / "test").mkdir()
    with pytest.raises(InputError, match="no photo in its 'test' split"):
        evaluate_folder(model, empty)
    plums = _folder(tmp_path / "plums", {"train": 1, "test": 1}, labels=("apple", "plum"))
    with pytest.raises(InputError, match=r"missing .*\['pear'\].*extra .*\['plum'\]"):
        evaluate_folder(model, plums)


def test_evaluate_folder_refuses_a_checkpoint_without_preprocessing(trained, tmp_path):
    data, _, checkpoint, _ = trained
    payload = torch.load(checkpoint.path, weights_only=True)
    payload["version"] = 1  # as written before checkpoints recorded their preprocessing
    del payload["preprocess"], payload["train_image_keys"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="does not record how its training images"):
        evaluate_folder(tmp_path / "old.pt", data)


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `datasynth evaluate ARGS` in this process, as the console script does."""
    monkeypatch.setattr(sys, "argv", ["datasynth", "evaluate", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_evaluate_command_prints_json_and_one_line_errors(trained, monkeypatch, capsys):
    data, _, checkpoint, _ = trained
    code, out, err = _cli(monkeypatch, capsys, "--model", checkpoint.path, "--data", str(data))
    assert code == 0 and (json.loads(out)["split"], json.loads(out)["images"]) == ("test", 6)
    assert err == ""
    args = ("--model", checkpoint.path, "--data", str(data), "--split", "all")
    code, out, err = _cli(monkeypatch, capsys, *args)
    assert code == 0 and json.loads(out)["images"] == 18
    assert "warning: 12 of the 18 scored images trained this model" in err
    args = ("--model", checkpoint.path, "--data", str(data), "--size", "32")
    code, out, err = _cli(monkeypatch, capsys, *args)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: `size` 32 differs") and len(err.strip().splitlines()) == 1
