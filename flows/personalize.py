"""The `personalize` flow: fit a generator to the real train split, then show its samples."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from synth.generation.personalize_config import PersonalizeConfig
from synth.lock import DatasetLock
from tasks.personalize import fit_generator, publish_generator_samples
from tasks.realdata import import_real

__all__ = ["personalize_generator"]


@flow(name="personalize", log_prints=True)
def personalize_generator(
    config: PersonalizeConfig,
    real_data: str,
    out: str,
    classes: tuple[str, ...] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> str:
    """Fit `config.base` to the train split of `real_data` into `out`; returns `out`.

    Steps: 1. import the real photos, split as an experiment with the same `test_fraction` and
    `split_seed` splits them (only the train split reaches the fit; the test split's digest is
    recorded), 2. fit, resuming from the newest checkpoint after a kill, or return a finished
    fit of the same config and photos, 3. publish a grid of samples per class.
    """
    out = str(Path(out).resolve())
    with DatasetLock(Path(out)):  # one fit per output folder
        # Step 1: real photos
        real = import_real(real_data, classes, test_fraction, split_seed, out, "personalize")
        # Step 2: fit
        result = fit_generator(config, real, out)
        print(f"generator {result.out_dir}: {result.kind}, {result.steps} steps")
        # Step 3: samples
        publish_generator_samples(result, tuple(real.classes))
    return out
