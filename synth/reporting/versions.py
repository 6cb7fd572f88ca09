"""Dataset versions for nightly regeneration: dated directories, a record each, pruning, trends.

Layout: `<root>/versions/<YYYYMMDDTHHMMSSZ>-<nnnn>/` holds one synthetic dataset (the generation
engine's layout: `train/`, `dataset.json`), the experiment run on it (`run/`: report, metrics,
models) and, once the run is over, `version.json`. The UTC timestamp says when the version was
started; the sequence number `nnnn` grows by one per version, so names are unique and sort in
creation order even for two versions started in the same second.

A version is complete only once `version.json` exists (it is written atomically, last). A run
that crashed leaves the latest directory without it; the next run with the same config resumes
that directory instead of starting another (its images are regenerated only where missing).
Pruning removes incomplete directories other than the latest one. Callers that run several
writers on one root serialise them (the nightly flow holds `synth.lock.DatasetLock(root)`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synth.config import ExperimentConfig
from synth.errors import InputError
from synth.evaluation.summary import MetricSummary, RecipeSummary
from synth.seeds import derive_seed
from synth.storage import atomic_write_bytes

__all__ = [
    "TrendPoint",
    "VersionInfo",
    "VersionSlot",
    "config_digest",
    "finish_version",
    "list_versions",
    "new_version_dir",
    "open_version",
    "prune_versions",
    "record_version",
    "trend_rows",
    "trend_table",
    "version_seed",
]

VERSIONS = "versions"
VERSION_FILE = "version.json"  # written last: its presence makes a version complete
CLAIM_FILE = "claim.json"  # written at creation: which config the directory was started for
RUN_DIR = "run"  # the experiment's outputs inside a version
_STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"(\d{8}T\d{6}Z)-(\d{4,})")
_TRASH = ".deleting"  # a version is renamed to '.<name>.deleting' before it is removed


@dataclass(frozen=True)
class TrendPoint:
    """One recipe's metric in one version: a point of `synth.reporting.plots.trend_plot`."""

    version: str
    created: str
    recipe: str
    value: MetricSummary
    images: int
    dataset: str


@dataclass(frozen=True)
class VersionInfo:
    """A complete version, as recorded in its `version.json`."""

    name: str
    path: str
    created: str  # ISO 8601 UTC, when the version was started
    seed: int  # generation seed of this version's images
    config_digest: str
    dataset_digest: str
    counts: dict[str, int]
    images: int
    metrics: tuple[RecipeSummary, ...]  # the experiment's recipes on its main test set


@dataclass(frozen=True)
class VersionSlot:
    """The version a nightly run writes: where, with which seed, and its experiment config."""

    name: str
    path: str  # the synthetic dataset root
    run_dir: str  # the experiment's out directory
    seed: int
    config_digest: str  # of the base config the version was started for
    resumed: bool  # True when an incomplete version left by a crashed run is continued
    config: ExperimentConfig  # the base config with this version's seed and run_dir


def config_digest(config: ExperimentConfig) -> str:
    """sha256 of the config's canonical JSON: which settings a version was made with."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def version_seed(base_seed: int, name: str) -> int:
    """The generation seed of version `name`: new images every night, reproducible from the name.

    A 63-bit value derived from (base seed, version name), within `GenerationConfig.seed`'s range.
    """
    return derive_seed(base_seed, "version", name)


def _sequence(path: Path) -> int:
    match = _NAME.fullmatch(path.name)
    assert match, path  # only called on names _version_dirs accepted
    return int(match.group(2))


def _version_dirs(versions: Path) -> list[Path]:
    """Every version directory (complete or not), oldest first (by sequence number)."""
    if not versions.is_dir():
        return []
    found = [p for p in versions.iterdir() if p.is_dir() and _NAME.fullmatch(p.name)]
    return sorted(found, key=_sequence)


def _is_complete(path: Path) -> bool:
    return (path / VERSION_FILE).is_file()


def _claimed_for(path: Path) -> str | None:
    try:
        return json.loads((path / CLAIM_FILE).read_text(encoding="utf-8"))["config_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a crash before the claim was written: never resumed, pruned later


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def _claim(root: Path, now: datetime, digest: str) -> tuple[Path, bool]:
    if now.tzinfo is None:
        raise InputError(f"`now` must be timezone-aware, got the naive datetime {now!r}")
    versions = Path(root) / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    dirs = _version_dirs(versions)
    # 1. Resume the latest version if a crashed run left it incomplete with the same config
    if dirs and not _is_complete(dirs[-1]) and _claimed_for(dirs[-1]) == digest:
        return dirs[-1], True
    # 2. Otherwise start the next one; mkdir is the atomic claim of a name
    sequence = _sequence(dirs[-1]) + 1 if dirs else 1
    stamp = now.astimezone(UTC).strftime(_STAMP)
    while True:
        path = versions / f"{stamp}-{sequence:04d}"
        try:
            path.mkdir()
            break
        except FileExistsError:
            sequence += 1
    created = now.astimezone(UTC).isoformat(timespec="seconds")
    _write_json(path / CLAIM_FILE, {"config_digest": digest, "created": created})
    return path, False


def new_version_dir(root: str | Path, now: datetime, *, config_digest: str = "") -> Path:
    """The directory the next version is written to: a new one, or the crashed one to resume.

    Args:
        root: Holds `versions/`; created when missing.
        now: Timezone-aware start time; its UTC form dates the name.
        config_digest: Identifies the config; an incomplete latest version is resumed only when
            it was started with the same one (other settings make a new version).
    """
    return _claim(Path(root), now, config_digest)[0]


def open_version(root: str | Path, config: ExperimentConfig, now: datetime) -> VersionSlot:
    """Pick (or resume) the version of a nightly run and derive its seed and experiment config."""
    digest = config_digest(config)
    path, resumed = _claim(Path(root).resolve(), now, digest)
    seed = version_seed(config.generation.seed, path.name)
    run_dir = path / RUN_DIR
    run_dir.mkdir(exist_ok=True)
    version_config = config.model_copy(
        update={
            "name": f"{config.name} {path.name}",
            "generation": config.generation.model_copy(update={"seed": seed}),
            "out": str(run_dir),
        }
    )
    return VersionSlot(path.name, str(path), str(run_dir), seed, digest, resumed, version_config)


def _created(name: str) -> str:
    match = _NAME.fullmatch(name)
    if not match:
        raise InputError(f"{name!r} is not a version name (<YYYYMMDDTHHMMSSZ>-<n>)")
    stamp = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
    return stamp.isoformat(timespec="seconds")


def _info(path: Path, data: Mapping[str, Any]) -> VersionInfo:
    dataset = data["dataset"]
    return VersionInfo(
        name=path.name,
        path=str(path),
        created=data["created"],
        seed=int(data["seed"]),
        config_digest=data["config_digest"],
        dataset_digest=dataset["digest"],
        counts=dict(dataset["counts"]),
        images=int(dataset["images"]),
        metrics=tuple(RecipeSummary.from_dict(row) for row in data["metrics"]),
    )


def record_version(
    path: str | Path,
    dataset: Mapping[str, Any],
    metrics: Sequence[RecipeSummary],
    *,
    seed: int,
    config_digest: str,
) -> VersionInfo:
    """Write `version.json` atomically, which makes the version complete.

    Args:
        path: The version directory.
        dataset: The dataset's `digest`, `counts` and `images` (a `DatasetRef`'s fields).
        metrics: The experiment's recipe summaries on its main test set.
        seed: The generation seed the version's images were made with.
        config_digest: `config_digest` of the base config.
    """
    path = Path(path)
    missing = [k for k in ("digest", "counts", "images") if k not in dataset]
    if missing:
        raise InputError(f"`dataset` lacks {missing}; got keys {sorted(dataset)}")
    if not path.is_dir():
        raise InputError(f"version directory {str(path)!r} does not exist")
    data = {
        "name": path.name,
        "created": _created(path.name),
        "seed": seed,
        "config_digest": config_digest,
        "dataset": {
            "digest": dataset["digest"],
            "counts": dict(dataset["counts"]),
            "images": int(dataset["images"]),
        },
        "metrics": [summary.to_dict() for summary in metrics],
    }
    _write_json(path / VERSION_FILE, data)
    (path / CLAIM_FILE).unlink(missing_ok=True)  # version.json now says all the claim said
    return _info(path, data)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{str(path)!r} does not exist: the run did not finish") from None
    except ValueError as exc:
        raise InputError(f"{str(path)!r} is not valid JSON: {exc}") from None


def finish_version(slot: VersionSlot) -> VersionInfo:
    """Record a version from what its run wrote: `dataset.json` and the run's `metrics.json`."""
    dataset = _read_json(Path(slot.path) / "dataset.json")
    metrics = _read_json(Path(slot.run_dir) / "metrics.json")
    summaries = [RecipeSummary.from_dict(row) for row in metrics["recipes"]]
    return record_version(
        slot.path, dataset, summaries, seed=slot.seed, config_digest=slot.config_digest
    )


def list_versions(root: str | Path) -> list[VersionInfo]:
    """Complete versions under `root`, oldest first; incomplete directories are left out."""
    infos = []
    for path in _version_dirs(Path(root) / VERSIONS):
        if _is_complete(path):
            data = _read_json(path / VERSION_FILE)
            try:
                infos.append(_info(path, data))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{str(path / VERSION_FILE)!r} is malformed: {exc!r}") from None
    return infos


def _remove(path: Path) -> None:
    # rename first: a crash halfway through rmtree must not leave a "complete" half-version
    trash = path.with_name(f".{path.name}{_TRASH}")
    path.rename(trash)
    shutil.rmtree(trash)


def prune_versions(root: str | Path, keep: int) -> list[str]:
    """Keep the newest `keep` complete versions; remove older ones and abandoned incomplete ones.

    The latest directory, when incomplete, is the one in progress (or the one the next run
    resumes) and is never removed. Returns the paths removed, oldest first.
    """
    if keep < 1:
        raise InputError(f"`keep` must be >= 1, got {keep}")
    versions = Path(root) / VERSIONS
    for leftover in versions.glob(f".*{_TRASH}") if versions.is_dir() else ():
        shutil.rmtree(leftover)  # a removal a crash interrupted
    dirs = _version_dirs(versions)
    complete = [d for d in dirs if _is_complete(d)]
    kept = set(complete[-keep:])
    if dirs and not _is_complete(dirs[-1]):
        kept.add(dirs[-1])
    removed = [d for d in dirs if d not in kept]
    for path in removed:
        _remove(path)
    return [str(p) for p in removed]


def _check_metric(versions: Sequence[VersionInfo], metric: str) -> None:
    known = {m for v in versions for r in v.metrics for m in r.metrics}
    if versions and metric not in known:
        raise InputError(f"`metric` {metric!r} is not in the versions' metrics {sorted(known)}")


def trend_rows(versions: Sequence[VersionInfo], metric: str = "accuracy") -> list[TrendPoint]:
    """One row per version x recipe, oldest first: the points of `synth.reporting.plots.trend_plot`.

    Recipes whose `metric` is undefined in a version (None) have no row for that version.
    """
    _check_metric(versions, metric)
    rows = []
    for version in versions:
        for summary in version.metrics:
            value = summary.metrics.get(metric)
            if value is None:
                continue
            rows.append(
                TrendPoint(
                    version=version.name,
                    created=version.created,
                    recipe=summary.recipe,
                    value=value,
                    images=version.images,
                    dataset=version.dataset_digest[:12],
                )
            )
    return rows


def trend_table(versions: Sequence[VersionInfo], metric: str = "accuracy") -> list[dict]:
    """One row per version, oldest first: its dataset and '<mean> ± <95% CI>' per recipe."""
    _check_metric(versions, metric)
    recipes = list(dict.fromkeys(r.recipe for v in versions for r in v.metrics))
    rows = []
    for version in versions:
        by_recipe = {r.recipe: r for r in version.metrics}
        row: dict[str, Any] = {
            "version": version.name,
            "created": version.created,
            "images": version.images,
            "dataset": version.dataset_digest[:12],
            "seed": version.seed,
        }
        for recipe in recipes:
            found = by_recipe.get(recipe)
            value = found.metrics.get(metric) if found else None
            row[f"{recipe} {metric}"] = "n/a" if value is None else str(value)
        rows.append(row)
    return rows
