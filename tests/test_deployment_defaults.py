"""The demo config is defined once: the CLI, `datasynth serve` and prefect.yaml agree on it."""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments.automations import HEARTBEAT_SECONDS
from deployments.serve import NIGHTLY_CRON
from synth.config import ExperimentConfig, GenerationConfig, parse_config
from synth.demo import REPO, demo_config

PREFECT_YAML = REPO / "deployments" / "prefect.yaml"


def _deployments() -> dict[str, dict]:
    data = yaml.safe_load(PREFECT_YAML.read_text())
    return {d["name"]: d for d in data["deployments"]}


def test_prefect_yaml_experiment_and_nightly_forms_are_the_demo_config():
    demo = demo_config("runs/ui", repo=None)
    for name in ("experiment", "nightly-regeneration"):
        config = _deployments()[name]["parameters"]["config"]
        assert parse_config(ExperimentConfig, config, name) == demo, name


def test_prefect_yaml_generate_form_is_the_demo_generation_config():
    params = _deployments()["generate"]["parameters"]
    demo = demo_config("runs/ui", repo=None)
    assert parse_config(GenerationConfig, params["config"]) == demo.generation
    assert Path(params["out"]) == Path(demo.out) / "synthetic"


def test_prefect_yaml_heartbeat_and_cron_are_the_served_ones():
    for deployment in _deployments().values():
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS)
    (schedule,) = _deployments()["nightly-regeneration"]["schedules"]
    assert schedule["cron"] == NIGHTLY_CRON


def test_demo_config_paths_are_absolute_under_the_repo_for_the_cli():
    config = demo_config(Path("/tmp/x"))
    assert config.out == "/tmp/x"
    assert Path(config.real_data) == REPO / "data" / "fruits"
    assert [Path(p) for p in config.extra_test_sets] == [REPO / "data" / "grocery-fruits"]
    assert Path(config.generation.model).is_absolute()
