"""Process defaults for Prefect, set before it is imported (only where the user has not)."""

from __future__ import annotations

import os

_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # a cold machine needs longer than Prefect's default to start the ephemeral server
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
}


def apply_prefect_defaults() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
