"""docker/: what can be checked without a Docker daemon (none here, so nothing is built or run).

The compose file parses, and its services, ports, URLs and names agree with each other, with the
worker image, with deployments/prefect.yaml (the `gpu` pool, DATASYNTH_HOME) and with uv.lock.
The PostgreSQL path itself is exercised for real, without Docker, in test_ops_deployments.py.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
POOL = "gpu"


def _expand(value: str) -> str:
    """Compose's `${VAR:-default}` with the variable unset: the default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile.gpu-worker, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile.gpu-worker").read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _instructions(dockerfile, name: str) -> list[str]:
    return [args for instr, args in dockerfile if instr == name]


def _env(dockerfile) -> dict[str, str]:
    env = {}
    for args in _instructions(dockerfile, "ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _deployment_pools() -> set[str]:
    path = REPO / "deployments" / "prefect.yaml"
    if not path.exists():
        return {POOL}
    spec = yaml.safe_load(path.read_text())
    return {d["work_pool"]["name"] for d in spec["deployments"]}


def test_compose_has_postgres_server_and_a_gpu_worker(services):
    assert {"postgres", "server", "worker"} <= set(services)
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])  # data survives


def test_server_uses_the_postgres_service(services):
    pg_env = {k: _expand(str(v)) for k, v in services["postgres"]["environment"].items()}
    server = services["server"]
    url = urlsplit(_expand(server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]))
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port) == ("postgres", 5432)  # the service name, Postgres' port
    assert (url.username, url.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
    assert url.path == f"/{pg_env['POSTGRES_DB']}"
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_server_listens_inside_but_is_published_on_loopback_only(services):
    server = services["server"]
    command = server["command"]
    host = command[command.index("--host") + 1]
    port = command[command.index("--port") + 1]
    assert host == server["environment"]["PREFECT_SERVER_API_HOST"] == "0.0.0.0"
    assert port == str(server["environment"]["PREFECT_SERVER_API_PORT"])
    assert server["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert server["environment"]["PREFECT_UI_API_URL"] == f"http://127.0.0.1:{port}/api"
    assert f":{port}/api/health" in " ".join(server["healthcheck"]["test"])


def test_server_image_runs_the_locked_prefect_version(services):
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked = next(p["version"] for p in lock["package"] if p["name"] == "prefect")
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    image = services["server"]["image"]
    assert image == f"prefecthq/prefect:{locked}-python3.11" and "3.11" in python


def test_worker_reaches_the_server_and_serves_the_deployments_pool(services, dockerfile):
    server_port = services["server"]["command"][services["server"]["command"].index("--port") + 1]
    worker = services["worker"]
    assert worker["environment"]["PREFECT_API_URL"] == f"http://server:{server_port}/api"
    assert worker["depends_on"]["server"]["condition"] == "service_healthy"
    cmd = shlex.join(worker["command"])
    image_cmd = shlex.join(yaml.safe_load(_instructions(dockerfile, "CMD")[-1]))
    for command in (cmd, image_cmd):
        assert command.startswith("prefect worker start")
        pool = shlex.split(command)[shlex.split(command).index("--pool") + 1]
        assert {pool} == _deployment_pools() == {POOL}


def test_worker_reserves_the_gpus(services):
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_worker_keeps_models_and_runs_on_volumes(compose, services, dockerfile):
    env = _env(dockerfile)
    worker = services["worker"]
    mounts = dict(v.split(":", 1)[::-1] for v in worker["volumes"])  # container path -> volume
    assert worker["environment"]["HF_HOME"] == env["HF_HOME"] == "/models"
    assert mounts["/models"] in compose["volumes"]
    home = worker["environment"]["DATASYNTH_HOME"]
    assert home == env["DATASYNTH_HOME"] == _instructions(dockerfile, "WORKDIR")[-1]
    assert mounts[f"{home}/runs"] in compose["volumes"]
    assert env["PREFECT_LOCAL_STORAGE_PATH"].startswith(f"{home}/runs/")  # cached results kept
    volume = yaml.safe_load(_instructions(dockerfile, "VOLUME")[-1])
    assert {"/models", f"{home}/runs"} <= set(volume)


def test_prefect_yaml_moves_runs_into_datasynth_home():
    path = REPO / "deployments" / "prefect.yaml"
    if not path.exists():
        pytest.skip("deployments/prefect.yaml not written yet")
    pull = yaml.safe_load(path.read_text())["pull"]
    directories = [
        s[k]["directory"] for s in pull for k in s if k.endswith("set_working_directory")
    ]
    assert directories == ["{{ $DATASYNTH_HOME }}"]


def test_dockerfile_is_a_cuda_runtime_image_synced_from_the_lock(dockerfile):
    base = _instructions(dockerfile, "ARG")[0].split("=", 1)[1]
    assert _instructions(dockerfile, "FROM")[0] == "${CUDA_IMAGE}"
    assert base.startswith("nvidia/cuda:") and "-runtime-" in base
    runs = " ".join(_instructions(dockerfile, "RUN"))
    assert "uv sync --frozen --no-dev" in runs
    assert (REPO / "uv.lock").is_file()
    copied = [args.split() for args in _instructions(dockerfile, "COPY") if "--from" not in args]
    sources = [src for args in copied for src in args[:-1] if not src.startswith("--")]
    assert {"pyproject.toml", "uv.lock"} <= set(sources)
    for src in sources:  # every path the image copies exists in the repository
        assert (REPO / src).exists(), src


def test_compose_deploy_step_uses_the_prefect_yaml(services):
    deploy = services["deploy"]
    assert deploy["profiles"] == ["setup"]  # not started by `docker compose up`
    script = " ".join(deploy["command"])
    assert "deploy --all --prefect-file deployments/prefect.yaml" in script
    assert f"work-pool create {POOL} --type process" in script
    assert (REPO / "deployments" / "prefect.yaml").exists()
