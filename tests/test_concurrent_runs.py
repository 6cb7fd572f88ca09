"""Several runs at once on one PostgreSQL-backed Prefect server (issue 11, item 3).

The nightly deployment plus three API-triggered `experiment` runs are submitted together (as the
UI's Run button or a script would), two of them into the same `out` folder. The same folder must
never be written by two runs at once: the later one fails at once with the lock message (or, if
the first had already finished, runs after it). The others complete; nothing is lost or
duplicated; the server logs no errors. The figures are printed for docs/RELIABILITY.md
(`pytest -m heavy tests/test_concurrent_runs.py -s`).

Heavy (several minutes): CI runs it with `pytest -m heavy`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment

from synth.generation import manifest_path, read_manifest
from tests.test_ops_deployments import _small_config, stack  # noqa: F401 - the fixture

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(1800)]

RUN_WAIT_S = 1200
LOCK_MESSAGE = "another datasynth run"


def _config(tmp_path: Path, tiny_model_dir: Path, name: str, out: Path) -> dict:
    config = _small_config(tmp_path / name, tiny_model_dir) | {"name": name, "out": str(out)}
    return config


def _wait_all_final(run_ids: list) -> list:
    deadline = time.monotonic() + RUN_WAIT_S
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = [client.read_flow_run(i) for i in run_ids]
            if all(r.state.is_final() for r in runs):
                return runs
            time.sleep(3)
    raise AssertionError(f"runs not final after {RUN_WAIT_S} s: {[r.state for r in runs]}")


def _message(run) -> str:
    return f"{run.state.name}: {run.state.message or ''}"


def _task_runs(run_ids: list | None = None) -> list:
    """Task runs of these flow runs (all of the server's when None), page by page."""
    where = FlowRunFilter(id=FlowRunFilterId(any_=run_ids)) if run_ids is not None else None
    found: list = []
    with get_client(sync_client=True) as client:
        while page := client.read_task_runs(flow_run_filter=where, offset=len(found), limit=200):
            found += page
    return found


def _assert_manifest_has_no_duplicates(dataset: Path) -> int:
    rows = read_manifest(manifest_path(dataset))
    names = [r.file_name for r in rows]
    assert len(names) == len(set(names)), f"duplicate manifest rows in {dataset}"
    return len(rows)


def test_nightly_and_three_api_runs_at_once_two_sharing_a_folder(stack, tmp_path, tiny_model_dir):  # noqa: F811
    url, home = stack
    shared, other, nightly_out = tmp_path / "shared", tmp_path / "other", tmp_path / "nightly"
    experiment, nightly = "experiment/experiment", "nightly-regeneration/nightly-regeneration"
    targets = {  # name -> (deployment, out folder): two runs share one folder
        "nightly": (nightly, nightly_out),
        "shared-1": (experiment, shared),
        "shared-2": (experiment, shared),
        "other": (experiment, other),
    }
    submitted = {
        name: (deployment, {"config": _config(tmp_path, tiny_model_dir, name, out)})
        for name, (deployment, out) in targets.items()
    }
    started = time.monotonic()
    ids = {
        name: run_deployment(deployment, parameters=params, timeout=0).id
        for name, (deployment, params) in submitted.items()
    }
    runs = dict(zip(ids, _wait_all_final(list(ids.values())), strict=True))
    wall = time.monotonic() - started

    # the runs on their own folders complete
    for name in ("nightly", "other"):
        assert runs[name].state.is_completed(), _message(runs[name])
        assert (nightly_out / "nightly" if name == "nightly" else other).is_dir()
    assert (other / "report.html").is_file()
    # the shared folder: one completes; the other failed at once on the lock, or ran after it
    first, second = sorted((runs["shared-1"], runs["shared-2"]), key=lambda r: r.start_time)
    assert first.state.is_completed(), _message(first)
    if second.state.is_completed():
        assert second.start_time >= first.end_time, "two runs wrote one folder at once"
    else:
        assert LOCK_MESSAGE in (second.state.message or ""), _message(second)
        assert not _task_runs([second.id]), "the locked run did work before failing"
    assert (shared / "report.html").is_file()
    metrics = json.loads((shared / "metrics.json").read_text())
    assert metrics  # written whole by the run that held the folder
    # nothing lost or duplicated in any dataset the runs wrote
    rows = {
        "shared": _assert_manifest_has_no_duplicates(shared / "synthetic"),
        "other": _assert_manifest_has_no_duplicates(other / "synthetic"),
    }
    assert rows == {"shared": 12, "other": 12}  # 2 classes x 6 images, each exactly once
    # the server stayed healthy: no errors in its log
    server_logs = list(Path(home).parent.glob("server-*.log"))
    errors = [
        line
        for log in server_logs
        for line in log.read_text(errors="replace").splitlines()
        if " ERROR " in line or "| ERROR" in line or "Traceback" in line
    ]
    assert not errors, errors[:5]
    tasks = _task_runs()
    states = {name: _message(run) for name, run in runs.items()}
    print(f"\nconcurrent runs: {len(runs)} submitted flow runs (+ their subflows), {len(tasks)}")
    print(f"task runs, server log errors {len(errors)}, wall {wall:.0f} s")
    for name, state in states.items():
        print(f"  {name}: {state[:160]}")
