"""The one offline demo config: `datasynth demo`, the served deployments' form defaults and
deployments/prefect.yaml all come from configs/demo.toml through `demo_config`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from synth.config import ExperimentConfig, load_config

__all__ = ["DEMO_MODEL", "REPO", "demo_config"]

REPO = Path(__file__).resolve().parents[1]
# The tiny pipeline fitted to data/fruits' train split, shipped in the repo (models/README.md
# says how it was made and the one command that rebuilds it)
DEMO_MODEL = Path("models") / "tiny-fruits"  # relative to the repository root


def demo_config(out: str | Path, *, repo: Path | None = REPO) -> ExperimentConfig:
    """configs/demo.toml with its paths under `repo` (absolute), or as written when `repo` is
    None (relative to the repository root, as prefect.yaml's workers resolve them)."""
    base = repo if repo is not None else Path()
    path = REPO / "configs" / "demo.toml"
    extra = tomllib.loads(path.read_text(encoding="utf-8")).get("extra_test_sets", [])
    overrides = {
        "generation.model": str(base / DEMO_MODEL),
        "real_data": str(base / "data" / "fruits"),
        "extra_test_sets": [str(base / p) for p in extra],  # the grocery photos, in the repo
        "out": str(base / out) if repo is not None else str(out),
    }
    return load_config(path, ExperimentConfig, overrides)
