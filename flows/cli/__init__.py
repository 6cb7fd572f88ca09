"""The `datasynth` command line: parse, load the config, call a flow; each module below registers
its commands on `app`. `main` is the console script and the one error path of every command: a
failure the user can fix (a `DatasynthError`, a full disk, a read-only folder, a lost Prefect
API, a GPU out of memory; see `flows.cli.errors`) becomes one `error:` line and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from flows.cli import experiment_commands, generate_commands, ops_commands  # noqa: F401
from flows.cli.app import app
from flows.cli.errors import user_error_line, user_tracebacks_dropped

__all__ = ["app", "main"]


def main() -> None:
    try:
        with user_tracebacks_dropped():
            app()
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise  # a bug: the traceback is what its report needs
        typer.secho(f"error: {line}", fg="red", err=True)
        sys.exit(2)
