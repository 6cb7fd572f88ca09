"""Operations commands of the `datasynth` CLI: a local Prefect server and served deployments."""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Annotated

import typer

from flows.cli.app import app
from flows.cli.env import apply_prefect_defaults


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = (
        "127.0.0.1"
    ),
    port: int = 4200,
) -> None:
    """Start a Prefect server with its UI (bound to 127.0.0.1 unless told otherwise)."""
    apply_prefect_defaults()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        typer.secho(
            f"warning: binding to {host}: anyone who reaches this address can run flows",
            fg="yellow",
            err=True,
        )
    # The UI asks its API at PREFECT_UI_API_URL, which otherwise stays on port 4200.
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    os.environ.setdefault("PREFECT_UI_API_URL", f"http://{shown}:{port}/api")
    typer.echo(f"Prefect UI: http://{shown}:{port}  (API: http://{shown}:{port}/api)")
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    os.execvp(cmd[0], cmd)


@app.command()
def serve(
    timezone: Annotated[str, typer.Option(help="Timezone of the nightly cron.")] = "UTC",
) -> None:
    """Serve every deployment (experiment, generate, nightly-regeneration) from this process."""
    apply_prefect_defaults()
    from deployments.automations import HEARTBEAT_SECONDS
    from deployments.serve import serve_all

    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))

    serve_all(timezone)


@app.command("gpu-limits")
def gpu_limits() -> None:
    """Create this machine's GPU limits on the Prefect server (one per visible GPU, 1 slot)."""
    apply_prefect_defaults()
    if not os.environ.get("PREFECT_API_URL"):
        raise typer.BadParameter("set PREFECT_API_URL to the server the workers report to")
    from deployments.gpu_limits import ensure_machine_gpu_limits

    names, created = ensure_machine_gpu_limits()
    if not names:
        typer.echo("no GPU visible: nothing to limit")
    for name in names:
        typer.echo(f"{name}: {'created' if name in created else 'exists'}")
