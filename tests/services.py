"""Real services for the operations tests: PostgreSQL (Debian's), a Prefect server on it, and
`datasynth serve` serving the deployments. Each is a context manager that cleans up."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.conftest import REPO, _free_port, start_prefect_server

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(cmd: list[str]) -> list[str]:
    """Postgres refuses to run as root: run its tools as the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server():
    """A throwaway PostgreSQL 15 cluster on a free loopback port; yields its asyncpg URL."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError("PostgreSQL 15 is not installed: apt-get install postgresql")
    base = Path(tempfile.mkdtemp(prefix="datasynth-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-w",
                "-l",
                str(base / "pg.log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN.parent / "bin" / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "prefect",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def prefect_server_on(database_url: str | None = None):
    """A Prefect server (PostgreSQL when `database_url` is given); yields (api_url, home)."""
    home = Path(tempfile.mkdtemp(prefix="datasynth-prefect-")) / "home"
    home.mkdir()
    env = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {}
    proc, url = start_prefect_server(home, env)
    try:
        yield url, home
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def served_deployments(
    api_url: str, home: Path, timezone: str = "UTC", extra_env: dict[str, str] | None = None
):
    """`datasynth serve` in a subprocess until its three deployments are registered."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), **(extra_env or {})}
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--timezone", timezone],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"datasynth serve exited: {(home / 'serve.log').read_text()}")
            if _deployment_count(api_url) >= 3:
                break
            time.sleep(1)
        else:
            raise RuntimeError("deployments were not registered within 180 s")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _deployment_count(api_url: str) -> int:
    req = urllib.request.Request(
        f"{api_url}/deployments/count", data=b"{}", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.read())
    except OSError:
        return 0
