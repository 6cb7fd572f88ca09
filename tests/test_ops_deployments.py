"""Operations on real services: a Prefect server on PostgreSQL, `datasynth serve`, the API.

Heavy (several minutes): CI runs them with `pytest -m heavy`.
"""

import json
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled

from tests.helpers import assert_dataset_intact, file_ids
from tests.services import postgres_server, prefect_server_on, served_deployments
from tests.test_flow_experiment import make_real_folder

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def stack():
    """PostgreSQL → Prefect server → `datasynth serve`, for this module's tests."""
    with (
        postgres_server() as db,
        prefect_server_on(db) as (url, home),
        temporary_settings({PREFECT_API_URL: url}),
        served_deployments(url, home, timezone="Europe/Paris"),
    ):
        yield url, home


def _small_config(tmp_path, tiny_model_dir) -> dict:
    real = make_real_folder(tmp_path / "real", {"train": 6, "test": 3})
    return {
        "name": "deployment test",
        "generation": {
            "classes": [{"name": "apple"}, {"name": "banana"}],
            "images_per_class": 6,
            "model": str(tiny_model_dir),
            "steps": 2,
            "width": 64,
            "height": 64,
            "batch_size": 4,
        },
        "real_data": str(real),
        "out": str(tmp_path / "run"),
        "recipes": [{"name": "real", "kind": "real"}, {"name": "synthetic", "kind": "synthetic"}],
        "seeds": [0],
        "train": {"epochs": 1},
        "shap_images_per_class": 0,
    }


def _artifacts(run_id) -> dict:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in found}


def test_experiment_deployment_runs_on_postgres_and_artifacts_are_readable(
    stack, tmp_path, tiny_model_dir
):
    run = run_deployment(
        "experiment/experiment",
        parameters={"config": _small_config(tmp_path, tiny_model_dir)},
        timeout=900,
    )
    assert run.state.is_completed(), run.state
    artifacts = _artifacts(run.id)
    table = artifacts["experiment-metrics"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert [r["recipe"] for r in table] == ["real", "synthetic"]
    assert (tmp_path / "run" / "report.html").is_file()


def test_deployments_have_typed_forms_and_the_nightly_cron(stack):
    with get_client(sync_client=True) as client:
        experiment = client.read_deployment_by_name("experiment/experiment")
        nightly = client.read_deployment_by_name("nightly-regeneration/nightly-regeneration")
    schema = experiment.parameter_openapi_schema
    config_ref = schema["properties"]["config"]
    assert "$ref" in config_ref or "allOf" in config_ref
    assert "ExperimentConfig" in json.dumps(schema["definitions"])
    assert "images_per_class" in json.dumps(schema["definitions"])
    (schedule,) = nightly.schedules
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "Europe/Paris"


def test_nightly_deployment_twice_makes_two_versions_and_a_trend(stack, tmp_path, tiny_model_dir):
    params = {"config": _small_config(tmp_path, tiny_model_dir), "root": str(tmp_path / "nightly")}
    runs = [
        run_deployment("nightly-regeneration/nightly-regeneration", parameters=params, timeout=900)
        for _ in range(2)
    ]
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    versions = sorted(
        p for p in (tmp_path / "nightly" / "versions").iterdir() if (p / "version.json").is_file()
    )
    assert len(versions) == 2
    trend = _artifacts(runs[1].id)["dataset-trend"].data
    trend = json.loads(trend) if isinstance(trend, str) else trend
    assert len({row["version"] for row in trend}) == 2


def test_failed_generation_run_is_retried_through_the_api_without_regenerating(
    tmp_path, tiny_model_dir
):
    """A run that fails midway (faults past its retries) is retried via the API: exact counts."""
    cfg = _small_config(tmp_path, tiny_model_dir)["generation"] | {"images_per_class": 8}
    out = tmp_path / "gen"
    with (
        postgres_server() as db,
        prefect_server_on(db) as (url, home),
        temporary_settings({PREFECT_API_URL: url}),
    ):
        faults = {"DATASYNTH_FAULTS": "partial=1.0,seed=4"}
        with served_deployments(url, home, extra_env=faults):
            run = run_deployment(
                "generate-dataset/generate",
                parameters={"config": cfg, "out": str(out), "retries": 0},
                timeout=600,
            )
        assert run.state.is_failed(), run.state
        before = file_ids(out)
        assert 0 < len(before) < 16
        # the fault is gone: press "Retry" (what the UI's button does through the API)
        with served_deployments(url, home), get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Scheduled(name="AwaitingRetry"), force=True)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                state = client.read_flow_run(run.id).state
                if state.is_final():
                    break
                time.sleep(2)
        assert state.is_completed(), state
    assert_dataset_intact(out, {"apple": 8, "banana": 8})
    after = file_ids(out)
    assert all(after[name] == ident for name, ident in before.items())  # none generated twice
