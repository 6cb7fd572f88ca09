"""The deployments, served from one process: `datasynth serve` (single-machine setup).

- `experiment` (manual): the whole study; its `config` parameter is a pydantic model, so the
  Prefect UI shows a typed form, with defaults that run offline (the demo config).
- `generate` (manual): generation only, resumable.
- `nightly-regeneration`: cron `0 2 * * *` in the configured timezone.
The same deployments for the `gpu` work pool are in deployments/prefect.yaml.
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.schedules import Cron

from flows.experiment import experiment
from flows.generate import generate_dataset
from flows.nightly import nightly_regeneration
from synth.config import ExperimentConfig
from synth.demo import demo_config

__all__ = ["NIGHTLY_CRON", "build_deployments", "default_config", "serve_all"]

NIGHTLY_CRON = "0 2 * * *"


def default_config() -> ExperimentConfig:
    """The demo config (synth/demo.py) into runs/ui: the form's defaults run offline as they are."""
    return demo_config("runs/ui")


def build_deployments(timezone: str = "UTC", config: ExperimentConfig | None = None) -> list:
    """The three runner deployments with their parameters and schedules."""
    config = config or default_config()
    params = {"config": config.model_dump(mode="json")}
    return [
        experiment.to_deployment(
            name="experiment",
            parameters=params,
            description="The whole study: generate, import, train recipes, evaluate, report.",
            tags=["datasynth"],
        ),
        generate_dataset.to_deployment(
            name="generate",
            parameters={
                "config": config.generation.model_dump(mode="json"),
                "out": str(Path(config.out) / "synthetic"),
            },
            description="Generate (or resume) a synthetic dataset.",
            tags=["datasynth"],
        ),
        nightly_regeneration.to_deployment(
            name="nightly-regeneration",
            parameters=params,
            schedule=Cron(NIGHTLY_CRON, timezone=timezone),
            description="A new dataset version every night, re-evaluated, with a trend.",
            tags=["datasynth"],
        ),
    ]


def serve_all(timezone: str = "UTC", limit: int | None = None) -> None:
    """Serve every deployment from this process until interrupted."""
    from deployments.automations import ensure_crash_detection
    from deployments.gpu_limits import ensure_machine_gpu_limits

    ensure_crash_detection()
    ensure_machine_gpu_limits()  # one run per card (tasks/gpu_slots.py)
    serve(*build_deployments(timezone), limit=limit)
