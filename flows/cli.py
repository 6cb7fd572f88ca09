"""The `datasynth` command line: parse → load_config → flow."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.env import apply_prefect_defaults

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _overrides(pairs: list[str]) -> dict[str, object]:
    """`--set key=value` pairs; values parse as JSON when they can (numbers, lists, true)."""
    result: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects key=value, got {pair!r}")
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError:
            result[key] = raw
    return result


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@app.command("tiny-model")
def tiny_model(path: Path, seed: int = 0) -> None:
    """Build the tiny random-weight SD pipeline (offline tests and demo) and save it to PATH."""
    from synth.tiny_model import save_tiny_pipeline

    save_tiny_pipeline(path, seed=seed)
    typer.echo(f"tiny Stable Diffusion pipeline saved to {path}")


@app.command()
def generate(
    config: Path,
    out: Annotated[Path, typer.Option(help="Dataset directory (created or resumed).")],
    set_: Annotated[list[str], typer.Option("--set", help="Override: key=value.")] = [],  # noqa: B006
    retries: int = 3,
    retry_delay: float = 5.0,
) -> None:
    """Generate (or resume) the synthetic dataset of CONFIG into OUT, with a progress bar."""
    apply_prefect_defaults()
    from synth.config import ConfigError, GenerationConfig, load_config

    try:
        cfg = load_config(config, GenerationConfig, _overrides(set_))
    except ConfigError as exc:
        _fail(str(exc))
    from flows.generate import generate_dataset
    from flows.progress import ManifestProgress
    from synth.generate import model_info
    from synth.lock import DatasetLockedError
    from synth.pipeline import ModelUnavailableError

    try:
        model_info(cfg)  # check inputs first: a missing model fails here, not in a task
        with ManifestProgress(out, len(cfg.classes) * cfg.images_per_class):
            ref = generate_dataset(cfg, str(out), retries=retries, retry_delay_seconds=retry_delay)
    except (ModelUnavailableError, DatasetLockedError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"dataset {ref.root}: {ref.images} images {ref.counts}, digest {ref.digest}")


def main() -> None:  # pragma: no cover - console entry point
    app(sys.argv[1:])
