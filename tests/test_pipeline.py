import socket

import pytest

from synth.errors import ModelUnavailableError
from synth.generation import describe_model, load_pipeline, model_loader


def test_describe_model_fails_fast_for_unreachable_hub_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = []  # offline means no connection at all, so none of the hub's 25 s of retries

    def connect(self, address):
        attempts.append(address)
        raise OSError("network used by an offline hub lookup")

    monkeypatch.setattr(socket.socket, "connect", connect)
    with pytest.raises(ModelUnavailableError, match="local directory") as err:
        describe_model(
            "someone/not-cached-model",
            revision=None,
            device="cpu",
            dtype="auto",
            scheduler="default",
        )
    assert "datasynth tiny-model" in str(err.value)
    assert not attempts


def test_describe_model_rejects_missing_and_non_model_directories(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        describe_model(
            str(tmp_path / "nope"), revision=None, device="cpu", dtype="auto", scheduler="default"
        )
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        describe_model(
            str(tmp_path), revision=None, device="cpu", dtype="auto", scheduler="default"
        )


def test_load_pipeline_loads_local_model_once_per_process(tiny_model_dir):
    kwargs = dict(revision=None, device="cpu", dtype="auto", scheduler="ddim")
    first = load_pipeline(str(tiny_model_dir), **kwargs)
    second = load_pipeline(str(tiny_model_dir), **kwargs)
    assert first is second
    assert type(first.pipe).__name__ == "StableDiffusionPipeline"
    assert type(first.pipe.scheduler).__name__ == "DDIMScheduler"
    assert first.info.dtype == "fp32" and first.info.revision.startswith("local-sha256:")


def test_describe_model_rejects_cuda_without_gpu(tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="`device`"):
        describe_model(
            str(tiny_model_dir), revision=None, device="cuda", dtype="auto", scheduler="default"
        )


# ------------------------------------------------------ hub ids: the commit, never the branch

SHA_OLD, SHA_NEW = "1" * 40, "2" * 40


def _fake_hub_cache(root, tiny_model_dir, sha: str, beta_end: float):
    """The tiny model as the hub client caches it: models--acme--tiny-sd/snapshots/<sha>, with
    refs/main pointing at `sha`; each snapshot's scheduler says which one was loaded."""
    import json
    import shutil

    repo = root / "models--acme--tiny-sd"
    snapshot = repo / "snapshots" / sha
    shutil.copytree(tiny_model_dir, snapshot)
    scheduler = snapshot / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({**json.loads(scheduler.read_text()), "beta_end": beta_end}))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(sha)  # what `huggingface-cli download` leaves


@pytest.fixture
def hub_cache(tmp_path, tiny_model_dir, monkeypatch):
    """An offline HF cache holding 'acme/tiny-sd' at SHA_OLD (main) for this test only."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(model_loader, "_cache", {})  # pipelines loaded from other fake caches
    _fake_hub_cache(tmp_path / "hf", tiny_model_dir, SHA_OLD, beta_end=0.012)
    return tmp_path / "hf"


def _describe(model: str, revision: str | None = None):
    return describe_model(model, revision=revision, device="cpu", dtype="auto", scheduler="default")


def test_hub_model_records_the_cached_commit_of_its_branch_not_the_branch(hub_cache):
    assert _describe("acme/tiny-sd").revision == SHA_OLD
    (hub_cache / "models--acme--tiny-sd" / "refs" / "v1").write_text(SHA_OLD)
    assert _describe("acme/tiny-sd", "v1").revision == SHA_OLD
    assert _describe("acme/tiny-sd", SHA_OLD).revision == SHA_OLD  # a commit is itself


def test_hub_model_loads_the_files_of_the_commit_it_records(hub_cache, tiny_model_dir, monkeypatch):
    _fake_hub_cache(hub_cache, tiny_model_dir, SHA_NEW, beta_end=0.02)  # main moved on
    settings = dict(revision=None, device="cpu", dtype="auto", scheduler="default")
    new = load_pipeline("acme/tiny-sd", **settings)
    assert (new.info.revision, new.pipe.scheduler.config.beta_end) == (SHA_NEW, 0.02)
    # main moving between resolving and loading: the files are still the resolved commit's
    monkeypatch.setattr(model_loader, "hub_commit", lambda *a, **k: SHA_OLD)
    old = load_pipeline("acme/tiny-sd", **settings)
    assert (old.info.revision, old.pipe.scheduler.config.beta_end) == (SHA_OLD, 0.012)


def test_uncached_hub_model_records_the_commit_the_hub_resolves(monkeypatch, tmp_path):
    import huggingface_hub
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("synth.hub.hub_reachable", lambda timeout=3.0: True)
    asked = []

    def model_info(self, repo_id, *, revision=None, **kwargs):
        asked.append((repo_id, revision))
        return type("Info", (), {"sha": SHA_NEW})()

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    assert _describe("acme/remote", "v2").revision == SHA_NEW
    assert asked == [("acme/remote", "v2")]


def test_a_new_commit_of_main_is_drift_in_model_revision(hub_cache, tiny_model_dir, tmp_path):
    from synth.config import GenerationConfig
    from synth.errors import DatasetDriftError
    from synth.generation import generate_batch, prepare_output

    config = GenerationConfig(
        classes=["apple"], images_per_class=1, model="acme/tiny-sd", steps=2, width=32, height=32
    )
    state = prepare_output(tmp_path / "ds", config)
    generate_batch(config, tmp_path / "ds", state.missing)
    assert prepare_output(tmp_path / "ds", config).missing == ()  # same commit: done
    _fake_hub_cache(hub_cache, tiny_model_dir, SHA_NEW, beta_end=0.02)  # a download moved main
    with pytest.raises(DatasetDriftError, match=f"model_revision '{SHA_OLD}' → '{SHA_NEW}'"):
        prepare_output(tmp_path / "ds", config)
