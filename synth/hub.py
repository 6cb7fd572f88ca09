"""The Hugging Face hub as datasynth meets it: a model id loads from the local cache, or from the
hub when it can be reached, or fails at once with what to do (no minutes of library retries)."""

from __future__ import annotations

import os
import socket

from synth.errors import ModelUnavailableError

__all__ = ["HUB_HOST", "hub_cached_only", "hub_reachable"]

HUB_HOST = "huggingface.co"


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub answers on 443 within `timeout` seconds."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_cached_only(
    model: str, what: str, advice: str, *, file: str = "config.json", revision: str | None = None
) -> bool:
    """True when hub id `model` must load from the local cache only (its `file` is cached);
    False when it can be downloaded; else `ModelUnavailableError` naming `what` and `advice`.

    Checked before diffusers/transformers run: their own retries hang for minutes offline.
    """
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, file, revision=revision), str):
        return True
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else f"{HUB_HOST} cannot be reached"
        raise ModelUnavailableError(
            f"{what} {model!r} is not a local folder and {why}, so it cannot be downloaded. "
            f"Download it where there is a network (`huggingface-cli download {model}`) and "
            f"{advice}"
        )
    return False
