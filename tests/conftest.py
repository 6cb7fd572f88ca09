"""Test isolation: a temporary PREFECT_HOME, a real Prefect server, the tiny pipeline, no hub.

The environment is set at import, before any test module imports prefect, so every flow in this
process and every CLI subprocess talks to the same session server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.internal.conjecture import providers as hypothesis_providers

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="datasynth-tests-"))
os.environ.update(
    {
        "PREFECT_HOME": str(_SESSION_DIR / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "DIFFUSERS_VERBOSITY": "error",
        "TOKENIZERS_PARALLELISM": "false",
    }
)
os.environ.pop("DATASYNTH_FAULTS", None)
os.environ.pop("DATASYNTH_CRASH_AT", None)

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------ hypothesis
# A derandomized test must draw the same examples whatever else the run loads. Hypothesis seeds it
# from the test's own code, but it also mixes in constants harvested from the source of every
# local, non-test module in sys.modules, re-read whenever sys.modules grows
# (`providers._get_local_constants`): a test's draws depended on which other test modules had been
# collected or run before it, so `pytest tests/reliability` failed where the file alone passed.
# The pool is pinned empty (tests list their edge values themselves); `-m fuzz`, random by design,
# gets the harvest back (`_hypothesis_constants`).
settings.register_profile(
    "datasynth", derandomize=True, database=None, deadline=None, print_blob=True
)
settings.load_profile("datasynth")
try:
    _harvest_local_constants = hypothesis_providers._get_local_constants
except AttributeError as exc:  # a new hypothesis: find the new hook before trusting any draw
    raise RuntimeError(f"re-pin hypothesis's local constants in {__file__}: {exc}") from None
_NO_LOCAL_CONSTANTS = hypothesis_providers.Constants()


def _use_local_constants(harvest: bool) -> None:
    hypothesis_providers._get_local_constants = (
        _harvest_local_constants if harvest else lambda: _NO_LOCAL_CONSTANTS
    )
    hypothesis_providers.CONSTANTS_CACHE.cache.clear()  # it holds the pool it was built from


_use_local_constants(False)


@pytest.fixture(autouse=True)
def _hypothesis_constants(request):
    """Only `fuzz` tests (random, wider) draw constants from the project's source."""
    if request.node.get_closest_marker("fuzz") is None:
        yield
        return
    _use_local_constants(True)
    try:
        yield
    finally:
        _use_local_constants(False)


@pytest.fixture(autouse=True)
def _forget_fitting_batch_sizes():
    """An out-of-memory in one test must not shrink the next test's batches: the batch size
    that fits is remembered per process (synth/generation/batch.py `fitting_batch_size`)."""
    yield
    batch = sys.modules.get("synth.generation.batch")  # never imported here: torch is slow
    if batch is not None:
        batch._fitting.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_prefect_server(
    home: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start `prefect server start` on a free loopback port; returns (process, api_url)."""
    port = _free_port()
    server_env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        **(env or {}),
    }
    server_env.pop("PREFECT_API_URL", None)
    log = open(home.parent / f"server-{port}.log", "wb")  # noqa: SIM115 - lives with the server
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: see {log.name}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("prefect server did not start within 180 s")


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server (SQLite) for the whole session; flows and subprocesses use it."""
    home = _SESSION_DIR / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    proc, url = start_prefect_server(home)
    os.environ["PREFECT_API_URL"] = url  # for CLI subprocesses
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}):  # for flows in this process
        yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny random SD pipeline, saved once per session like any diffusers model."""
    from synth.generation import save_tiny_pipeline

    return save_tiny_pipeline(_SESSION_DIR / "tiny-sd")


@pytest.fixture
def tiny_config(tiny_model_dir):
    """A fast generation config on the tiny pipeline: 2 classes x 6 images, 64 px, 3 steps."""
    from synth.config import GenerationConfig

    return GenerationConfig(
        classes=["apple", "banana"],
        images_per_class=6,
        model=str(tiny_model_dir),
        steps=3,
        width=64,
        height=64,
        batch_size=4,
        seed=7,
    )
