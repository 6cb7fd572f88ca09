"""Scale-out on Dask: the runner specs, GPU pinning, and 2 workers writing what 1 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from distributed import Client
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.generate import generate_dataset
from flows.runners import (
    apply_task_runner,
    local_cluster,
    make_task_runner,
    visible_gpus,
    with_parent_runner,
    worker_envs,
)
from tests.helpers import assert_dataset_intact

_FINAL = {"Completed", "Cached", "Failed", "Crashed"}


def test_make_task_runner_threads_is_a_thread_pool():
    assert isinstance(make_task_runner("threads"), ThreadPoolTaskRunner)


@pytest.mark.parametrize(
    ("spec", "address"),
    [
        ("dask://scheduler:8786", "tcp://scheduler:8786"),
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("tls://gpu-box.lan:8786", "tls://gpu-box.lan:8786"),
    ],
)
def test_make_task_runner_connects_to_a_scheduler_address(spec, address):
    runner = make_task_runner(spec)
    assert isinstance(runner, DaskTaskRunner) and runner.address == address


@pytest.mark.parametrize("spec", ["procs", "dask://scheduler", "dask://:8786", "tcp://h:port", ""])
def test_make_task_runner_rejects_unknown_specs(spec):
    with pytest.raises(ValueError, match="`task_runner`"):
        make_task_runner(spec)


def test_make_task_runner_sizes_the_local_cluster_by_gpus_or_workers():
    def kwargs(**options):
        runner = make_task_runner("dask", **options)
        assert isinstance(runner, DaskTaskRunner) and runner.address is None
        return runner.cluster_kwargs

    assert kwargs(gpus=("0", "1", "2")) == {"n_workers": 3, "gpus": ("0", "1", "2")}
    assert kwargs(gpus=()) == {"n_workers": 2, "gpus": ()}
    assert kwargs(gpus=(), workers=3) == {"n_workers": 3, "gpus": ()}
    assert kwargs(gpus=("0", "1"), workers=1) == {"n_workers": 1, "gpus": ("0", "1")}
    with pytest.raises(ValueError, match="only 1 GPU"):
        make_task_runner("dask", gpus=("0",), workers=2)
    with pytest.raises(ValueError, match="local cluster"):
        make_task_runner("dask://h:1", workers=2)


def test_apply_task_runner_keeps_the_flows_own_pool_for_threads():
    assert apply_task_runner(generate_dataset, "threads") is generate_dataset
    with pytest.raises(ValueError, match="dask_workers"):
        apply_task_runner(generate_dataset, "threads", workers=2)
    cpu = apply_task_runner(generate_dataset, "dask", device="cpu")
    assert cpu.task_runner.cluster_kwargs["gpus"] == ()  # device=cpu: CPU workers


@pytest.mark.usefixtures("prefect_server")
def test_with_parent_runner_keeps_the_subflows_pool_outside_dask():
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def parent() -> bool:
        return with_parent_runner(generate_dataset) is generate_dataset

    assert with_parent_runner(generate_dataset) is generate_dataset  # not in a flow run
    assert parent()  # a thread-pool parent: the subflow keeps its own two-thread pool


def test_worker_envs_pin_worker_i_to_gpu_i():
    assert worker_envs(2, ("0", "1")) == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]
    assert worker_envs(1, ("GPU-5e1f",)) == [{"CUDA_VISIBLE_DEVICES": "GPU-5e1f"}]
    assert worker_envs(2, ()) == [{}, {}]  # CPU workers: nothing pinned
    with pytest.raises(ValueError, match="one worker per GPU"):
        worker_envs(3, ("0", "1"))
    with pytest.raises(ValueError, match="at least 1"):
        worker_envs(0, ())


def test_visible_gpus_follow_the_parents_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ("3", "5")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ("0", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert visible_gpus() == ()


# --- the flow on Dask, against the session Prefect server ---------------------------------------


def _task_states(flow_run_id, expected: int) -> list[str]:
    """States of the run's batch tasks; Dask workers report them as events, which may lag."""
    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        states = [r.state.name for r in runs if r.name.startswith("generate-batch")]
        if (len(states) == expected and set(states) <= _FINAL) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def _run(flow, config, out: Path):
    state = flow(config, str(out), retry_delay_seconds=0, return_state=True)
    return state.result(), state.state_details.flow_run_id


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in (root / "train").rglob("*")
        if p.is_file()
    }


@pytest.mark.usefixtures("prefect_server")
def test_two_dask_workers_write_the_dataset_one_process_writes(tmp_path, tiny_config):
    # 4 batches of 2 for 2 workers; device=cpu: CPU workers even where a GPU is visible
    config = tiny_config.model_copy(
        update={"batch_size": 2, "images_per_class": 4, "device": "cpu"}
    )
    counts = {"apple": 4, "banana": 4}
    before = dict(os.environ)

    def worker_view() -> tuple[str | None, int, int]:
        """(CUDA_VISIBLE_DEVICES, torch threads, pipelines loaded) inside a worker process."""
        import os

        import torch

        from synth.generation import model_loader

        return (
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            torch.get_num_threads(),
            len(model_loader._cache),
        )

    # 1 process: the default thread pool, in this process
    one, _ = _run(generate_dataset, config, tmp_path / "one")
    # 2 workers: a running cluster given by address, so its workers can be inspected after.
    # They are pinned to GPU ids that do not exist: they see no GPU (the config says cpu anyway)
    # and we check that each got its own id.
    with local_cluster(2, gpus=("7", "9")) as cluster, Client(cluster) as client:
        two_workers = apply_task_runner(generate_dataset, cluster.scheduler_address)
        two, _ = _run(two_workers, config, tmp_path / "two")
        views = client.run(worker_view)  # a function defined here: pickled by value
        names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
        rerun, rerun_id = _run(two_workers, config, tmp_path / "two")
        assert set(_task_states(rerun_id, expected=4)) == {"Cached"}  # persisted results work
    threads = torch.get_num_threads()
    # each worker on its own GPU, torch on this process's thread count, the pipeline loaded once
    assert {names[a]: v for a, v in views.items()} == {
        "gpu-7": ("7", threads, 1),
        "gpu-9": ("9", threads, 1),
    }
    # Dask's own default would have written OMP_NUM_THREADS=1 into this (the flow's) environment
    env = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    assert [os.environ.get(k) for k in env] == [before.get(k) for k in env]
    # the same dataset: digest, counts, the same files, every image byte for byte
    assert one.digest == two.digest == rerun.digest and one.counts == two.counts == counts
    assert _files(tmp_path / "one").keys() == _files(tmp_path / "two").keys()
    images = {n: b for n, b in _files(tmp_path / "one").items() if n.endswith(".png")}
    assert images == {n: b for n, b in _files(tmp_path / "two").items() if n.endswith(".png")}
    for root in (tmp_path / "one", tmp_path / "two"):
        assert_dataset_intact(root, counts)  # concurrent appends from 2 processes stayed whole


@pytest.mark.heavy  # two runs of the whole experiment: minutes on 2 cores
@pytest.mark.usefixtures("prefect_server")
def test_experiment_on_dask_generates_on_the_workers_the_bytes_threads_write(tmp_path, tiny_config):
    """`datasynth run --task-runner dask`: the generation subflow's batches go to the run's
    cluster (a subflow does not inherit its parent's runner: `with_parent_runner`)."""
    from flows.experiment import experiment
    from synth.config import ExperimentConfig
    from synth.generation import model_loader
    from tests.test_flow_experiment import make_real_folder

    generation = tiny_config.model_copy(
        update={"batch_size": 2, "images_per_class": 4, "steps": 2, "device": "cpu"}
    )
    config = ExperimentConfig.model_validate(
        {
            "name": "dask",
            "generation": generation.model_dump(),
            "real_data": str(make_real_folder(tmp_path / "real", {"train": 4, "test": 2})),
            "out": str(tmp_path / "run"),
            "recipes": [
                {"name": "real", "kind": "real"},
                {"name": "synthetic", "kind": "synthetic"},
            ],
            "seeds": [0],
            "train": {"epochs": 1, "finetune_epochs": 1, "device": "cpu"},
            "quality": {"enabled": False},
            "shap_images_per_class": 0,
        }
    )

    def loaded_pipelines() -> int:
        from synth.generation import model_loader

        return len(model_loader._cache)

    counts = {"apple": 4, "banana": 4}
    model_loader._cache.clear()  # this (the flow's) process must load no pipeline
    with local_cluster(2) as cluster, Client(cluster) as client:
        on_dask = apply_task_runner(experiment, cluster.scheduler_address)
        assert Path(on_dask(config)).is_file()
        # 4 batches: each worker ran some, loading the pipeline; the flow process ran none
        assert sorted(client.run(loaded_pipelines).values()) == [1, 1]
    assert loaded_pipelines() == 0
    # the dataset the thread runner writes (same torch settings): digest and every image
    pool, _ = _run(generate_dataset, generation, tmp_path / "pool")
    dask = json.loads((tmp_path / "run" / "synthetic" / "dataset.json").read_text())
    assert pool.digest == dask["digest"] and pool.counts == dask["counts"] == counts
    images = {n: b for n, b in _files(tmp_path / "pool").items() if n.endswith(".png")}
    assert len(images) == 8
    assert images == {
        n: b for n, b in _files(tmp_path / "run" / "synthetic").items() if n.endswith(".png")
    }
    assert_dataset_intact(tmp_path / "run" / "synthetic", counts)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows", *args], capture_output=True, text=True, timeout=600
    )


def _config_file(tmp_path: Path, model_dir: Path) -> Path:
    path = tmp_path / "gen.toml"
    path.write_text(
        'classes = ["apple", "banana"]\nimages_per_class = 4\nbatch_size = 2\nsteps = 3\n'
        f'width = 64\nheight = 64\nseed = 7\ndevice = "cpu"\nmodel = "{model_dir}"\n'
    )
    return path


@pytest.mark.usefixtures("prefect_server")
def test_generate_cli_rejects_an_unknown_task_runner(tmp_path, tiny_model_dir):
    config = _config_file(tmp_path, tiny_model_dir)
    result = _cli("generate", str(config), "--out", str(tmp_path / "ds"), "--task-runner", "mpi")
    assert result.returncode == 2
    assert "`task_runner` must be 'threads', 'dask'" in result.stderr
    assert not (tmp_path / "ds").exists()


def test_run_cli_rejects_an_unknown_task_runner(tmp_path, tiny_model_dir):
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.toml"
    result = _cli(
        "run", str(demo), "--set", f"generation.model={tiny_model_dir}",
        "--set", f"out={tmp_path / 'run'}", "--task-runner", "dask://nowhere",
    )  # fmt: skip
    assert result.returncode == 2
    assert "needs HOST:PORT" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.heavy
@pytest.mark.usefixtures("prefect_server")
def test_generate_cli_on_one_dask_worker_writes_the_same_dataset(tmp_path, tiny_model_dir):
    """`datasynth generate --task-runner dask --dask-workers 1`: the flow makes its cluster."""
    from synth.config import GenerationConfig, load_config

    config = _config_file(tmp_path, tiny_model_dir)
    result = _cli(
        "generate", str(config), "--out", str(tmp_path / "dask"), "--task-runner", "dask",
        "--dask-workers", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    one, _ = _run(generate_dataset, load_config(config, GenerationConfig), tmp_path / "pool")
    assert f"digest {one.digest}" in result.stdout
    assert_dataset_intact(tmp_path / "dask", {"apple": 4, "banana": 4})
