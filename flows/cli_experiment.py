"""Experiment commands of the `datasynth` CLI: run, demo, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.app import app, fail, parse_overrides
from flows.cli_generate import DASK_WORKERS_HELP, TASK_RUNNER_HELP
from flows.env import apply_prefect_defaults

REPO = Path(__file__).resolve().parents[1]


def _run_experiment(cfg, task_runner: str = "threads", dask_workers: int | None = None) -> str:
    from flows.experiment import experiment
    from flows.runners import apply_task_runner

    try:
        flow = apply_task_runner(
            experiment, task_runner, workers=dask_workers, device=cfg.generation.device
        )
    except ValueError as exc:
        fail(str(exc))
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
    from synth.config import ConfigError, ExperimentConfig, load_config
    from synth.generate import model_info
    from synth.pipeline import ModelUnavailableError

    try:
        cfg = load_config(config, ExperimentConfig, parse_overrides(set_))
        model_info(cfg.generation)
    except (ConfigError, ModelUnavailableError, ValueError) as exc:
        fail(str(exc))
    _run_experiment(cfg, task_runner, dask_workers)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
) -> None:
    """The whole study offline on CPU: the repo's fruit photos and a tiny local SD pipeline."""
    apply_prefect_defaults()
    from synth.config import ExperimentConfig, load_config
    from synth.tiny_model import is_tiny_model, save_tiny_pipeline

    tiny = REPO / ".datasynth" / "tiny-sd"
    if not is_tiny_model(str(tiny)):
        typer.echo(f"building the tiny offline pipeline in {tiny}")
        save_tiny_pipeline(tiny)
    cfg = load_config(
        REPO / "configs" / "demo.toml",
        ExperimentConfig,
        {
            "generation.model": str(tiny),
            "real_data": str(REPO / "data" / "fruits"),
            "out": str(out),
        },
    )
    _run_experiment(cfg)
    typer.echo("note: the tiny pipeline's images carry no class signal (the report says so).")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Checkpoint (.pt) written by datasynth.")],
    data: Annotated[Path, typer.Option(help="Labelled ImageFolder to score on.")],
    size: int | None = None,
) -> None:
    """Score a saved model on any labelled folder; prints the metrics as JSON."""
    import tempfile

    from synth.config import PreprocessConfig
    from synth.evaluate import evaluate_model
    from synth.preprocess import build_tensor_set, load_tensor_set, real_items
    from synth.realdata import import_real_dataset
    from synth.train import CheckpointError, load_checkpoint

    try:
        net, info = load_checkpoint(model)
        dataset = import_real_dataset(data, classes=info.class_names)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))
    items = real_items(dataset, "train") + real_items(dataset, "test")
    with tempfile.TemporaryDirectory() as tmp:
        pre = PreprocessConfig(size=size or info.size)
        tensors = load_tensor_set(build_tensor_set(items, Path(tmp) / "x.pt", pre).path)
    metrics = evaluate_model(net, tensors.images, tensors.labels, info.class_names)
    result = {
        "model": str(model),
        "data": str(data),
        "images": len(items),
        "quarantined": [{"path": q.path, "reason": q.reason} for q in dataset.quarantined],
        **metrics.summary(),
        "per_class": [vars(c) | {} for c in metrics.per_class],
        "confusion": metrics.confusion,
    }
    typer.echo(json.dumps(result, indent=2, default=str))
