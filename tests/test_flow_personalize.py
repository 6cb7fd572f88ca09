"""The `personalize` flow: fits on the train split, publishes progress and samples artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.personalize import personalize_generator
from synth.generation import save_tiny_pipeline
from synth.generation.personalize_config import PersonalizeConfig
from synth.generation.personalize_record import read_personalize_record

COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200)}


def _photos(root: Path) -> Path:
    for name, rgb in COLOURS.items():
        for split, n in (("train", 3), ("test", 1)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                shade = tuple(max(0, v - 20 * i - (60 if split == "test" else 0)) for v in rgb)
                Image.new("RGB", (20, 24), shade).save(folder / f"{split}{i}.png")
    return root


@pytest.mark.usefixtures("prefect_server")
def test_personalize_flow_fits_the_train_split_and_publishes_progress_and_samples(tmp_path):
    base = save_tiny_pipeline(tmp_path / "tiny-sd")
    config = PersonalizeConfig(
        base=str(base), steps=3, vae_steps=2, batch_size=2, resolution=16,
        checkpoint_every=2, device="cpu", seed=0,
    )  # fmt: skip
    out = personalize_generator(config, str(_photos(tmp_path / "photos")), str(tmp_path / "gen"))
    record = read_personalize_record(Path(out))
    assert record["kind"] == "tiny-pipeline" and record["n_images"] == 6  # the train split only
    assert (Path(out) / "model_index.json").is_file()  # an ordinary diffusers folder
    assert sorted(p.name for p in (Path(out) / "samples").iterdir()) == ["blue", "red"]
    imported = json.loads((Path(out) / "import-personalize.json").read_text())
    assert imported  # the import report sits beside the generator
    with get_client(sync_client=True) as client:
        # by key: the session's server holds more artifacts than one page of read_artifacts
        keys = ArtifactFilterKey(any_=["personalize-progress", "personalize-samples"])
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=keys), sort=ArtifactSort.CREATED_DESC
        )
    artifacts = {}
    for artifact in found:  # newest first: this run's
        artifacts.setdefault(artifact.key, artifact)
    assert float(artifacts["personalize-progress"].data) == 100.0
    assert "Fitted generator" in artifacts["personalize-samples"].data
    # a rerun of the same config and photos reuses the finished fit
    again = personalize_generator(config, str(tmp_path / "photos"), str(tmp_path / "gen"))
    assert read_personalize_record(Path(again)) == record


def test_personalize_tiny_config_file_is_the_demo_config():
    from synth.config import load_config
    from synth.demo import REPO
    from synth.generation.personalize_config import tiny_demo_config

    path = REPO / "configs" / "personalize-tiny.toml"
    assert load_config(path, PersonalizeConfig) == tiny_demo_config(".datasynth/tiny-sd")
