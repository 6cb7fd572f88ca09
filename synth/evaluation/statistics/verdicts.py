"""Verdicts in plain words: does a recipe help, hurt, or replace real data, and how sure is it.

Labels follow the paired interval only (never the point estimate alone); the rules and their
assumptions are written up in docs/STATISTICS.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from synth.evaluation.statistics.classwise import ClassDifference
from synth.evaluation.statistics.paired import PairedDifference

__all__ = ["LABELS", "Verdict", "class_summary", "verdict"]

VerdictKind = Literal["comparison", "replacement"]
LABELS = ("helps", "hurts", "no detectable difference", "replaces", "does not replace")


@dataclass(frozen=True)
class Verdict:
    """The answer for one candidate recipe against a baseline on one test set.

    Attributes:
        label: One of `LABELS`.
        sentence: The answer in plain words, with the numbers behind it.
        kind: 'comparison' (helps / hurts / no detectable difference) or 'replacement'
            (replaces / does not replace, non-inferiority within `margin`).
        candidate: Name of the recipe judged.
        baseline: Name of the recipe it is compared with.
        margin: Non-inferiority margin for 'replacement'; None for 'comparison'.
        difference: The paired difference the verdict rests on.
    """

    label: str
    sentence: str
    kind: str
    candidate: str
    baseline: str
    margin: float | None
    difference: PairedDifference


def _label(diff: PairedDifference, kind: str, margin: float) -> str:
    if kind == "replacement":
        # Non-inferiority: the whole interval must clear -margin, not just the point estimate.
        return "replaces" if diff.low > -margin else "does not replace"
    if diff.low > 0:
        return "helps"
    if diff.high < 0:
        return "hurts"
    return "no detectable difference"


def _interval(diff: PairedDifference) -> str:
    if diff.degenerate:
        return "no interval: every seed and test image gave the same difference"
    return f"{diff.confidence:.0%} interval {diff.low:+.3f} to {diff.high:+.3f}"


def _design(diff: PairedDifference, test_set: str | None) -> str:
    seeds = f"{diff.n_seeds} seed{'s' if diff.n_seeds != 1 else ''}"
    images = f"{diff.n_images} {test_set} images" if test_set else f"{diff.n_images} test images"
    return f"{seeds} x {images}"


def _detectable(diff: PairedDifference) -> str:
    if diff.mde is None:
        return "neither recipe varied over seeds and images, so no detectable size can be given"
    return (
        f"this run could detect a difference of about {diff.mde:.3f} or more "
        f"(80% power, alpha {1 - diff.confidence:.2f})"
    )


def verdict(
    diff: PairedDifference,
    *,
    kind: VerdictKind = "comparison",
    margin: float = 0.02,
    candidate: str = "real+synthetic",
    baseline: str = "real-only",
    test_set: str | None = None,
    budget: str | None = None,
    leakage_suspects: int | None = None,
) -> Verdict:
    """Label and sentence for `diff` (candidate minus baseline; higher is better).

    Rules: for 'comparison', an interval entirely above 0 helps, entirely below 0 hurts, anything
    else is no detectable difference (the sentence gives the smallest detectable difference).
    For 'replacement' (a synthetic-only recipe against real-only) the candidate replaces the
    baseline when the interval's lower end is above -margin, and does not replace it otherwise.

    Args:
        diff: The paired difference, e.g. from `paired_difference`.
        kind: 'comparison' or 'replacement'.
        margin: Non-inferiority margin in metric units, > 0 (used by 'replacement' only).
        candidate: Name of the candidate recipe in the sentence.
        baseline: Name of the baseline recipe in the sentence.
        test_set: Name of the test set, when not the default test split.
        budget: Training budget in words (e.g. 'equal optimiser steps'), appended when given.
        leakage_suspects: Synthetic images the leakage audit flagged, appended when given.

    Returns:
        The verdict.
    """
    if kind not in get_args(VerdictKind):
        raise ValueError(f"`kind` must be one of {get_args(VerdictKind)}, got {kind!r}")
    if not 0 < margin < 1:
        raise ValueError(f"`margin` must be in (0, 1) metric units, got {margin}")
    label = _label(diff, kind, margin)
    numbers = f"{diff.metric} {diff.mean:+.3f} ({_interval(diff)})"
    design = _design(diff, test_set)
    sentence = {
        "helps": f"{candidate} helps: {numbers} over {baseline}, {design}",
        "hurts": f"{candidate} hurts: {numbers} against {baseline}, {design}",
        "no detectable difference": (
            f"{candidate}: no detectable difference from {baseline}: {numbers}, {design}; "
            + _detectable(diff)
        ),
        "replaces": (
            f"{candidate} replaces {baseline} within a margin of {margin:.3f}: {numbers}, "
            f"{design}; the interval stays above -{margin:.3f}"
        ),
        "does not replace": (
            f"{candidate} does not replace {baseline}: {numbers}, {design}; the interval reaches "
            f"below the non-inferiority margin -{margin:.3f}"
        ),
    }[label]
    extras = [diff.notice] if diff.notice else []
    if budget:
        extras.append(f"budget: {budget}")
    if leakage_suspects:
        extras.append(f"leakage audit: {leakage_suspects} synthetic image(s) resemble test images")
    sentence = "; ".join([sentence, *extras]) + "."
    margin_used = margin if kind == "replacement" else None
    return Verdict(label, sentence, kind, candidate, baseline, margin_used, diff)


def class_summary(differences: Sequence[ClassDifference], *, rate: str = "recall") -> str:
    """Which classes the candidate helps or hurts, in words, from `per_class_differences`."""
    if rate not in ("recall", "f1"):
        raise ValueError(f"`rate` must be 'recall' or 'f1', got {rate!r}")
    groups: dict[str, list[str]] = {"helps": [], "hurts": []}
    unclear = 0
    for cls in differences:
        diff = getattr(cls, rate)
        label = None if diff is None else _label(diff, "comparison", 0.02)
        if label in groups:
            groups[label].append(f"{cls.name} ({diff.mean:+.2f})")
        else:
            unclear += 1
    parts = [f"{label} {', '.join(names)}" for label, names in groups.items() if names]
    if unclear or not parts:
        parts.append(f"no detectable difference for {unclear} class{'' if unclear == 1 else 'es'}")
    return f"Per-class {rate}: " + "; ".join(parts) + "."
