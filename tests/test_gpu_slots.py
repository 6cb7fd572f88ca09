"""One card, one run: the per-GPU Prefect global concurrency limits, on a real Prefect server."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import torch
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from tasks.gpu_slots import ensure_gpu_limits, gpu_limit_name, gpu_slot, hold_gpu, machine_name

REPO = Path(__file__).resolve().parents[1]


def _active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def _unique(prefix: str = "gpu-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{machine_name()}"


def test_limit_names_are_the_processs_card_on_this_machine(monkeypatch):
    monkeypatch.setenv("DATASYNTH_MACHINE", "box")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert gpu_limit_name() == "gpu-3@box"  # what this process calls cuda:0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5e1f")
    assert gpu_limit_name() == "gpu-GPU-5e1f@box"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_limit_name() == "gpu-0@box"
    assert gpu_limit_name("1", "other") == "gpu-1@other"
    monkeypatch.delenv("DATASYNTH_MACHINE")
    assert machine_name() and gpu_limit_name("2") == f"gpu-2@{machine_name()}"


@pytest.mark.usefixtures("prefect_server")
def test_ensure_gpu_limits_creates_one_slot_limits_once():
    name = _unique()
    assert ensure_gpu_limits([name]) == [name]
    assert ensure_gpu_limits([name]) == []  # kept, not recreated
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert (limit.limit, limit.active, limit.active_slots) == (1, True, 0)


@pytest.mark.usefixtures("prefect_server")
def test_a_gpu_task_holds_its_cards_limit_and_a_cpu_task_asks_nothing(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("DATASYNTH_MACHINE", f"box-{uuid.uuid4().hex[:8]}")
    name = gpu_limit_name()
    with gpu_slot("cpu") as held:
        assert held is None
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_global_concurrency_limit_by_name(name)  # the CPU created nothing
    # this machine has no GPU: make torch say it has one, as a GPU machine's would
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with gpu_slot("auto") as held:
        assert held == name == f"gpu-3@{machine_name()}"
        assert _active_slots(name) == 1
    assert _active_slots(name) == 0


@pytest.mark.usefixtures("prefect_server")
def test_threads_of_one_process_share_one_hold():
    name = _unique()
    both = threading.Barrier(2, timeout=120)
    seen = []

    def use() -> None:
        with hold_gpu(name):
            both.wait()  # both threads hold it at once
            seen.append(_active_slots(name))
            both.wait()  # both have looked before either lets go

    # each thread in a copy of this context: the Prefect settings (the test server) live there
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(use,)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [1, 1]
    assert _active_slots(name) == 0  # the last user gave it back


@pytest.mark.usefixtures("prefect_server")
def test_two_runs_needing_the_same_card_never_hold_it_together(tmp_path):
    name = _unique("gpu-0")
    ready = tmp_path / "ready"
    ready.mkdir()
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gpu_slot_run", name, str(tmp_path / me), str(ready)]
            + [me, other],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output[-3000:]
    (a0, a1), (b0, b1) = (map(int, (tmp_path / me).read_text().split()) for me in "ab")
    assert a1 <= b0 or b1 <= a0, "both runs held the card at once"
    assert _active_slots(name) == 0


@pytest.mark.usefixtures("prefect_server")
def test_a_cpu_run_is_not_blocked_by_a_held_card(tmp_path, tiny_model_dir):
    """The card this machine's GPU runs would take is held; a CPU generation still completes."""
    config = tmp_path / "gen.toml"
    config.write_text(
        'classes = ["apple", "banana"]\nimages_per_class = 2\nbatch_size = 2\nsteps = 2\n'
        f'width = 64\nheight = 64\nseed = 7\ndevice = "cpu"\nmodel = "{tiny_model_dir}"\n'
    )
    with hold_gpu(gpu_limit_name()):  # this process, not the CLI's: the CLI cannot share it
        result = subprocess.run(
            [sys.executable, "-m", "flows", "generate", str(config), "--out", str(tmp_path / "ds")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert _active_slots(gpu_limit_name()) == 1  # still ours while the run completed
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 images" in result.stdout


@pytest.mark.usefixtures("prefect_server")
def test_set_up_creates_a_limit_per_visible_gpu(monkeypatch):
    from deployments.gpu_limits import ensure_machine_gpu_limits

    monkeypatch.setenv("DATASYNTH_MACHINE", f"box-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert ensure_machine_gpu_limits() == ([], [])  # no GPU, no limit
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # as a 2-GPU machine's torch
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    names = [gpu_limit_name("4"), gpu_limit_name("6")]
    assert ensure_machine_gpu_limits() == (names, names)
    assert ensure_machine_gpu_limits() == (names, [])  # `serve` restarted: kept
    assert [_active_slots(n) for n in names] == [0, 0]
