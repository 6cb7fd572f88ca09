"""The experiment flow's real data: split by `split_seed` alone, train/test duplicates
published, empty test splits and clashing test-set names refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.experiment import experiment
from synth.config import ExperimentConfig
from synth.data import import_real_dataset
from synth.errors import DatasetLockedError, InputError
from synth.lock import DatasetLock

pytestmark = pytest.mark.usefixtures("prefect_server")

CLASSES = ("apple", "banana")  # tiny_config's


def _photo(seed: int) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((48, 36), Image.Resampling.NEAREST)


def _photos(folder: Path, seeds: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        _photo(seed).save(folder / f"{i}.png")


def _config(tmp_path: Path, tiny_config, real: Path, **extra) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "generation": tiny_config.model_dump(),
            "real_data": str(real),
            "out": str(tmp_path / "run"),
            "recipes": [{"name": "real", "kind": "real"}],
            "seeds": [0],
            "train": {"epochs": 1},
            "shap_images_per_class": 0,
            **extra,
        }
    )


def test_experiment_refuses_an_extra_test_set_named_like_the_main_one(tmp_path, tiny_config):
    real = tmp_path / "real"
    for c, label in enumerate(CLASSES):
        _photos(real / label, [10 * c + i for i in range(3)])
        _photos(tmp_path / "more" / "real-test" / label, [100 + c])
    extra = (str(tmp_path / "more" / "real-test"),)
    # the config refuses it too; the flow checks again for configs built without validation
    config = _config(tmp_path, tiny_config, real).model_copy(update={"extra_test_sets": extra})
    with pytest.raises(InputError, match="named 'real-test', like the main real dataset's"):
        experiment(config)
    assert not (tmp_path / "run" / "synthetic").exists()  # refused before generating


def test_experiment_refuses_an_empty_test_split_before_training(tmp_path, tiny_config):
    real = tmp_path / "real"
    for c, label in enumerate(CLASSES):
        _photos(real / "train" / label, [c])  # one photo per class: nothing to hold out
    with pytest.raises(InputError, match="`test_fraction` 0.2 holds out no image"):
        experiment(_config(tmp_path, tiny_config, real))
    assert not (tmp_path / "run" / "models").exists()


def test_experiment_into_a_folder_another_run_holds_fails_at_once(tmp_path, tiny_config):
    real = tmp_path / "real"
    for c, label in enumerate(CLASSES):
        _photos(real / label, [10 * c + i for i in range(3)])
    out = tmp_path / "run"
    out.mkdir()
    with (
        DatasetLock(out),  # another run of the same folder, in this process or any other
        pytest.raises(DatasetLockedError, match=f"another datasynth run .* is writing to {out}"),
    ):
        experiment(_config(tmp_path, tiny_config, real))
    assert [p.name for p in out.iterdir()] == [".datasynth.lock"]  # nothing done, nothing written


def test_experiment_splits_by_split_seed_and_publishes_duplicates(tmp_path, tiny_config):
    real = tmp_path / "real"
    _photos(real / "apple", [1] * 5)  # five copies of one photo: its test copy is a duplicate
    _photos(real / "banana", [20, 21, 22, 23, 24])
    preprocess = {"seed": 7, "synthetic_margin": [0.05, 0.2]}
    config = _config(tmp_path, tiny_config, real, split_seed=3, preprocess=preprocess)
    want = import_real_dataset(real, split_seed=3).split("test")
    assert want != import_real_dataset(real, split_seed=7).split("test")  # seeds tell apart
    experiment(config)
    imported = json.loads((tmp_path / "run" / "import-real.json").read_text())
    assert [e["path"] for e in imported["entries"] if e["split"] == "test"] == [
        e.path for e in want
    ]
    assert (imported["split_by"], imported["split_seed"]) == ("test_fraction", 3)
    (duplicate,) = imported["train_test_duplicates"]
    assert duplicate["exact"] and Path(duplicate["test"]).parent.name == "apple"
    with get_client(sync_client=True) as client:
        (artifact, *_) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["import-real"])),
            sort="CREATED_DESC",
        )
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [r["path"] for r in rows if r["split"] == "test duplicates train"] == [duplicate["test"]]
