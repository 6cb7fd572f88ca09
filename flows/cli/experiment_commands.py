"""Experiment commands of the `datasynth` CLI: run, demo, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import app, parse_overrides
from flows.cli.env import apply_prefect_defaults
from flows.cli.generate_commands import DASK_WORKERS_HELP, TASK_RUNNER_HELP


def _run_experiment(cfg, task_runner: str = "threads", dask_workers: int | None = None) -> str:
    from flows.experiment import experiment
    from flows.runners import apply_task_runner

    flow = apply_task_runner(
        experiment, task_runner, workers=dask_workers, device=cfg.generation.device
    )
    state = flow(cfg, return_state=True)
    report = state.result()
    run_id = state.state_details.flow_run_id
    typer.echo(f"\nreport: {Path(report).resolve()}")
    typer.echo(
        "see the run in the Prefect UI: `uv run datasynth server`, then open "
        f"http://127.0.0.1:4200/runs/flow-run/{run_id}"
    )
    return report


@app.command()
def run(
    config: Path,
    set_: Annotated[list[str], typer.Option("--set", help="Override: key=value.")] = [],  # noqa: B006
    task_runner: Annotated[str, typer.Option(help=TASK_RUNNER_HELP)] = "threads",
    dask_workers: Annotated[int | None, typer.Option(help=DASK_WORKERS_HELP)] = None,
) -> None:
    """Run the whole experiment of CONFIG (generate → import → train → evaluate → report)."""
    apply_prefect_defaults()
    from synth.config import ExperimentConfig, load_config
    from synth.generation import model_info

    cfg = load_config(config, ExperimentConfig, parse_overrides(set_))
    model_info(cfg.generation)  # check inputs first: a missing model fails here
    _run_experiment(cfg, task_runner, dask_workers)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
) -> None:
    """The whole study offline on CPU: the repo's fruit photos and a tiny local SD pipeline."""
    apply_prefect_defaults()
    from synth.demo import demo_config, ensure_tiny_model

    ensure_tiny_model()
    _run_experiment(demo_config(out.resolve()))
    typer.echo("note: the tiny pipeline's images carry no class signal (the report says so).")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Checkpoint (.pt) written by datasynth.")],
    data: Annotated[Path, typer.Option(help="Labelled ImageFolder to score on.")],
    size: int | None = None,
) -> None:
    """Score a saved model on any labelled folder; prints the metrics as JSON."""
    from synth.evaluation import evaluate_folder

    result = evaluate_folder(model, data, size)
    typer.echo(json.dumps(result, indent=2, default=str))
