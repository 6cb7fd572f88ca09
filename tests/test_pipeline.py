import time

import pytest

from synth.errors import ModelUnavailableError
from synth.generation import describe_model, load_pipeline


def test_describe_model_fails_fast_for_unreachable_hub_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="local directory") as err:
        describe_model(
            "someone/not-cached-model",
            revision=None,
            device="cpu",
            dtype="auto",
            scheduler="default",
        )
    assert "datasynth tiny-model" in str(err.value)
    assert time.monotonic() - start < 20  # no 25 s of hub retries; generous for slow CI


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
