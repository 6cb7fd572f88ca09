"""The errors a user can cause and fix; the CLI prints them as one line and exits non-zero.

Everything that derives from `DatasynthError` names the file, field or value at fault and what
to do. Any other exception is a bug in datasynth and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetDriftError",
    "DatasetLockedError",
    "DatasynthError",
    "InputError",
    "ModelUnavailableError",
]


class DatasynthError(Exception):
    """Base of every user-facing error: bad input or an environment the user can fix."""


class InputError(DatasynthError, ValueError):
    """A value, file or folder the user gave cannot be used; the message says which and why."""


class ConfigError(InputError):
    """A config file or value is invalid; the message names every bad field."""


class CheckpointError(InputError):
    """A checkpoint file is missing, unsafe to unpickle, or not a datasynth checkpoint."""


class DatasetDriftError(InputError):
    """Images already in a dataset folder were made with other settings than the config plans."""


class ModelUnavailableError(DatasynthError, RuntimeError):
    """The model is neither a local directory nor reachable on the hub."""


class DatasetLockedError(DatasynthError, RuntimeError):
    """Another run is writing to the same output directory."""
