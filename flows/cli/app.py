"""The typer app shared by the CLI modules (each registers its own commands)."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="datasynth: does synthetic data from a text-to-image model help your real data?",
)


def parse_overrides(pairs: list[str]) -> dict[str, object]:
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
