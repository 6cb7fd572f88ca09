"""The `datasynth` command line; each module below registers its own commands on `app`."""

from flows import cli_experiment, cli_generate, cli_ops  # noqa: F401  (they register commands)
from flows.app import app

__all__ = ["app"]
