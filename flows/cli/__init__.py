"""The `datasynth` command line: parse, load the config, call a flow; each module below registers
its commands on `app`. `main` is the console script: a `DatasynthError` (the user's to fix)
becomes one `error:` line and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from flows.cli import experiment_commands, generate_commands, ops_commands  # noqa: F401
from flows.cli.app import app
from synth.errors import DatasynthError

__all__ = ["app", "main"]


def main() -> None:
    try:
        app()
    except DatasynthError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
