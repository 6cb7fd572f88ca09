"""The `datasynth` command line; each module below registers its own commands on `app`."""

from flows import cli_generate  # noqa: F401  (registers generate, tiny-model)
from flows.app import app

__all__ = ["app"]
