"""Process defaults for Prefect, set before it is imported (only where the user has not), and
the choice of Prefect server a command reports to."""

from __future__ import annotations

import os
import urllib.request

import typer

_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # a cold machine needs longer than Prefect's default to start the ephemeral server
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
}
LOCAL_SERVER = "http://127.0.0.1:4200/api"  # where `datasynth server` listens by default


def apply_prefect_defaults() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)


def _healthy(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def choose_server() -> str:
    """Report to `PREFECT_API_URL`, else to a local `datasynth server` when one answers, else to
    a temporary server (about 18 s to start on 2 cores); says which on stderr."""
    apply_prefect_defaults()
    given = os.environ.get("PREFECT_API_URL")
    if given:
        chosen = f"Prefect server: {given} (PREFECT_API_URL)"
    elif _healthy(LOCAL_SERVER):
        os.environ["PREFECT_API_URL"] = LOCAL_SERVER
        chosen = f"Prefect server: {LOCAL_SERVER} (a running `datasynth server`)"
    else:
        chosen = (
            "Prefect server: a temporary one for this command "
            "(run `datasynth server` once to reuse one and keep the runs in its UI)"
        )
    typer.echo(chosen, err=True)
    return chosen
