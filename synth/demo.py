"""The one offline demo config: `datasynth demo`, the served deployments' form defaults and
deployments/prefect.yaml all come from configs/demo.toml through `demo_config`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from synth.config import ExperimentConfig, load_config
from synth.generation.tiny_model import is_tiny_model, save_tiny_pipeline

__all__ = ["REPO", "TINY_MODEL", "demo_config", "ensure_tiny_model"]

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = Path(".datasynth") / "tiny-sd"  # relative to the repository root


def ensure_tiny_model(repo: Path = REPO) -> Path:
    """The tiny offline pipeline under `repo`, built on first use."""
    tiny = repo / TINY_MODEL
    if not is_tiny_model(str(tiny)):
        print(f"building the tiny offline pipeline in {tiny}")
        save_tiny_pipeline(tiny)
    return tiny


def demo_config(out: str | Path, *, repo: Path | None = REPO) -> ExperimentConfig:
    """configs/demo.toml with its paths under `repo` (absolute), or as written when `repo` is
    None (relative to the repository root, as prefect.yaml's workers resolve them)."""
    base = repo if repo is not None else Path()
    path = REPO / "configs" / "demo.toml"
    extra = tomllib.loads(path.read_text(encoding="utf-8")).get("extra_test_sets", [])
    overrides = {
        "generation.model": str(base / TINY_MODEL),
        "real_data": str(base / "data" / "fruits"),
        "extra_test_sets": [str(base / p) for p in extra],  # the grocery photos, in the repo
        "out": str(base / out) if repo is not None else str(out),
    }
    return load_config(path, ExperimentConfig, overrides)
