"""The nightly-regeneration flow on a real Prefect server: versions on disk, the trend artifact."""

import json
from pathlib import Path

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.nightly import nightly_regeneration
from synth.config import ExperimentConfig, RecipeConfig, TrainConfig
from synth.reporting import list_versions
from tests.helpers import assert_dataset_intact

pytestmark = pytest.mark.usefixtures("prefect_server")

COLOURS = {"apple": (200, 30, 30), "banana": (230, 210, 40)}


def _real_folder(root: Path) -> Path:
    """A tiny ImageFolder with train/ and test/: a few tinted 32 px squares per class."""
    for split, n in (("train", 4), ("test", 2)):
        for label, (r, g, b) in COLOURS.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                shade = 10 * i
                Image.new("RGB", (32, 32), (r - shade, g, b + shade)).save(folder / f"{i}.png")
    return root


@pytest.fixture
def nightly_config(tmp_path, tiny_config):
    generation = tiny_config.model_copy(update={"steps": 2, "seed": 3})
    return ExperimentConfig(
        name="nightly test",
        generation=generation,
        real_data=str(_real_folder(tmp_path / "real")),
        recipes=(
            RecipeConfig(name="real", kind="real"),
            RecipeConfig(name="synthetic", kind="synthetic"),
        ),
        seeds=(0,),
        train=TrainConfig(epochs=1, device="cpu"),
        shap_images_per_class=0,
        out=str(tmp_path / "run"),
    )


def _run(config):
    state = nightly_regeneration(config, return_state=True)
    return state.result(), state.state_details.flow_run_id


def _artifacts(flow_run_id):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_nightly_regeneration_twice_makes_two_versions_and_a_two_row_trend(nightly_config):
    first, _ = _run(nightly_config)
    second, run_id = _run(nightly_config)

    root = Path(nightly_config.out).resolve() / "nightly"
    versions = list_versions(root)
    assert [v.path for v in versions] == [first, second]
    for version in versions:
        assert_dataset_intact(Path(version.path), {"apple": 6, "banana": 6})
        assert version.images == 12 and {r.recipe for r in version.metrics} == {
            "real",
            "synthetic",
        }
        recorded = json.loads((Path(version.path) / "version.json").read_text())
        assert recorded["seed"] == version.seed
        generated = json.loads((Path(version.path) / "dataset.json").read_text())
        assert generated["config"]["seed"] == version.seed  # the images were made with it
        assert (Path(version.path) / "run" / "report.html").is_file()
    assert versions[0].seed != versions[1].seed
    assert versions[0].dataset_digest != versions[1].dataset_digest  # a new sample each night

    artifacts = _artifacts(run_id)
    assert {"dataset-trend", "dataset-trend-plot"} <= set(artifacts)
    rows = json.loads(artifacts["dataset-trend"].data)
    assert [r["version"] for r in rows] == [v.name for v in versions]
    # one seed: a mean alone, never "± 0" (an interval over one seed does not exist)
    assert all(
        float(r["real accuracy"]) >= 0 and " ± " not in r["synthetic accuracy"] for r in rows
    )
    assert "data:image/png;base64," in artifacts["dataset-trend-plot"].data
