"""The Hugging Face hub as datasynth meets it: a model id loads from the local cache, or from the
hub when it can be reached, or fails at once with what to do (no minutes of library retries).

A branch or tag ('main') names different files over time, so what is recorded is the commit it
resolves to (`hub_commit`): the local cache's (`refs/<revision>`, what a cached or offline load
reads), else the hub's, asked once.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from synth.errors import ModelUnavailableError

__all__ = ["HUB_HOST", "hub_cached_only", "hub_commit", "hub_reachable"]

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


def hub_commit(model: str, revision: str | None, *, file: str = "config.json") -> str:
    """The commit sha that hub id `model` at `revision` (a branch, tag or commit; None is
    'main') resolves to, where its files come from.

    A cached `file` gives the commit its snapshot folder is named after (the cache's
    `refs/<revision>`); otherwise the hub is asked (call `hub_cached_only` first: it fails fast
    when the hub cannot be reached). Raises `ModelUnavailableError` for an unknown id or revision.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    cached = try_to_load_from_cache(model, file, revision=revision)
    if isinstance(cached, str):  # <cache>/models--org--name/snapshots/<commit>/<file>
        return Path(cached).parents[file.count("/")].name
    try:
        return HfApi().model_info(model, revision=revision).sha
    except HfHubHTTPError as exc:
        raise ModelUnavailableError(
            f"{model!r} at revision {revision or 'main'!r} cannot be resolved on the hub "
            f"({str(exc).splitlines()[0]})"
        ) from None
