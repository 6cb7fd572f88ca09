"""Generation commands of the `datasynth` CLI: parse → load_config → flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.app import app, parse_overrides
from flows.cli.env import choose_server

TASK_RUNNER_HELP = (
    "Where batches run: 'threads' (this process), 'dask' (a local Dask cluster, one worker per "
    "GPU) or the address of a running Dask scheduler, dask://HOST:PORT."
)
DASK_WORKERS_HELP = "Workers of `--task-runner dask` (default: one per GPU, 2 without GPUs)."
REGENERATE_CHANGED_HELP = (
    "Regenerate exactly the images already in the folder that were made with other settings "
    "than the config now plans (model, LoRA, prompt, steps, ...), and keep the rest; without "
    "it such a folder is refused."
)


@app.command("tiny-model")
def tiny_model(path: Path, seed: int = 0) -> None:
    """Build the tiny random-weight SD pipeline (offline tests and demo) and save it to PATH."""
    from synth.generation import save_tiny_pipeline

    save_tiny_pipeline(path, seed=seed)
    typer.echo(f"tiny Stable Diffusion pipeline saved to {path}")


@app.command()
def generate(
    config: Path,
    out: Annotated[Path, typer.Option(help="Dataset directory (created or resumed).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override: key=value.")] = [],  # noqa: B006
    retries: Annotated[
        int | None, typer.Option(help="Retries per batch (default: the task's own policy).")
    ] = None,
    retry_delay: Annotated[
        float | None, typer.Option(help="Seconds between retries (default: 2, 10, 30).")
    ] = None,
    task_runner: Annotated[str, typer.Option(help=TASK_RUNNER_HELP)] = "threads",
    dask_workers: Annotated[int | None, typer.Option(help=DASK_WORKERS_HELP)] = None,
    regenerate_changed: Annotated[bool, typer.Option(help=REGENERATE_CHANGED_HELP)] = False,
) -> None:
    """Generate (or resume) the synthetic dataset of CONFIG into OUT, with a progress bar."""
    choose_server()
    from flows.cli.progress import ManifestProgress
    from flows.generate import generate_dataset
    from flows.runners import apply_task_runner
    from synth.config import GenerationConfig, load_config
    from synth.generation import model_info, planned_file_names

    cfg = load_config(config, GenerationConfig, parse_overrides(set_))
    model_info(cfg)  # check inputs first: a missing model fails here, not in a task
    flow = apply_task_runner(generate_dataset, task_runner, workers=dask_workers, device=cfg.device)
    with ManifestProgress(out, len(planned_file_names(cfg))):
        ref = flow(
            cfg,
            str(out),
            retries=retries,
            retry_delay_seconds=retry_delay,
            regenerate_changed=regenerate_changed,
        )
    typer.echo(f"dataset {ref.root}: {ref.images} images {ref.counts}, digest {ref.digest}")


@app.command()
def personalize(
    config: Path,
    out: Annotated[Path, typer.Option(help="Output folder (created, resumed or reused).")],
    real_data: Annotated[
        Path, typer.Option(help="Real photos (ImageFolder); only their train split is read.")
    ] = Path("data/fruits"),
    test_fraction: Annotated[float, typer.Option(help="Held-out share, as in the run.")] = 0.2,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    set_: Annotated[list[str], typer.Option("--set", help="Override: key=value.")] = [],  # noqa: B006
) -> None:
    """Fit the generator of CONFIG to the train split of the real photos into OUT.

    LoRA adapters for SD-like pipelines, the whole tiny pipeline offline; then point a
    generation config's `model` (or `lora`) at OUT.
    """
    choose_server()
    from flows.personalize import personalize_generator
    from synth.config import load_config
    from synth.generation.personalize_config import PersonalizeConfig
    from synth.generation.personalize_record import read_personalize_record

    cfg = load_config(config, PersonalizeConfig, parse_overrides(set_))
    split = {"test_fraction": test_fraction, "split_seed": split_seed}
    done = personalize_generator(cfg, str(real_data), str(out), **split)
    use = "lora" if read_personalize_record(Path(done))["kind"] == "lora" else "model"
    typer.echo(f'generator {done}: set `{use} = "{done}"` in a generation config')
