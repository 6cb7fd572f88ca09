"""Experiment commands of the `datasynth` CLI: run, demo, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import app, parse_overrides
from flows.cli.env import choose_server
from flows.cli.generate_commands import (
    DASK_WORKERS_HELP,
    REGENERATE_CHANGED_HELP,
    TASK_RUNNER_HELP,
)


def _run_experiment(
    cfg,
    task_runner: str = "threads",
    dask_workers: int | None = None,
    regenerate_changed: bool = False,
) -> str:
    """Run the experiment flow of `cfg` and say where its report and its run are."""
    from synth.generation import model_info

    # check inputs first: a missing model (or the demo's shipped generator, or one of its
    # recorded files) fails here, before a Prefect server is chosen
    model_info(cfg.generation)
    choose_server()
    from flows.experiment import experiment
    from flows.runners import apply_task_runner

    flow = apply_task_runner(
        experiment, task_runner, workers=dask_workers, device=cfg.generation.device
    )
    state = flow(cfg, regenerate_changed=regenerate_changed, return_state=True)
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
    regenerate_changed: Annotated[bool, typer.Option(help=REGENERATE_CHANGED_HELP)] = False,
) -> None:
    """Run the whole experiment of CONFIG (generate → import → train → evaluate → report)."""
    from synth.config import ExperimentConfig, load_config

    cfg = load_config(config, ExperimentConfig, parse_overrides(set_))
    _run_experiment(cfg, task_runner, dask_workers, regenerate_changed)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
) -> None:
    """The whole study offline on CPU: the repo's fruit photos and a tiny generator fit to them."""
    from synth.demo import demo_config

    _run_experiment(demo_config(out.resolve()))
    typer.echo(
        "note: the tiny generator's 16 px images are colour and rough shape, not SD quality."
    )


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Checkpoint (.pt) written by datasynth.")],
    data: Annotated[Path, typer.Option(help="Labelled ImageFolder to score on.")],
    split: Annotated[
        str,
        typer.Option(
            help="test: the folder's held-out test/ photos; train: its train/; all: every "
            "photo (the only choice for a folder without train/ and test/)."
        ),
    ] = "test",
    size: Annotated[
        int | None,
        typer.Option(help="Check only: must equal the size the model was trained on."),
    ] = None,
) -> None:
    """Score a saved model on a labelled folder with its own preprocessing; prints JSON."""
    from synth.evaluation import evaluate_folder

    result = evaluate_folder(model, data, size, split=split)
    seen = result["images_seen_in_training"]
    if seen:  # stderr: stdout stays pure JSON for scripts
        typer.secho(
            f"warning: {seen} of the {result['images']} scored images trained this model; "
            "their scores are not held-out",
            fg="yellow",
            err=True,
        )
    typer.echo(json.dumps(result, indent=2, default=str))
