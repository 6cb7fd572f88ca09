"""The report's diagnosis section: domain gap, leakage audit and cost, in words, tables, figures.

Pure: it takes a `Diagnosis` and the tensor files the suspect pairs come from, returns a
`Section` (HTML) and markdown. Numbers are formatted here, so tables read as sentences do.
"""

from __future__ import annotations

from synth.data.preprocess import TensorSet, load_tensor_set
from synth.evaluation.diagnosis import Diagnosis, FeatureSpaceGap, LeakageCheck
from synth.figures import palette_image
from synth.reporting.diagnosis_plots import domain_gap_plot, nearest_distance_plot, pair_grid
from synth.reporting.html import Section

__all__ = ["TITLE", "diagnosis_markdown", "diagnosis_section"]

TITLE = "Diagnosis: domain gap, leakage audit, cost"
MAX_PAIRS = 8  # suspect pairs drawn in the report; all of them are in metrics.json


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _gap_sentence(gap: FeatureSpaceGap) -> str:
    parts = []
    for c in gap.classes:
        if c.ratio is None:
            parts.append(f"{c.name}: {c.reason or 'no yardstick (real-test FD is 0)'}")
        else:
            parts.append(
                f"{c.name} {c.ratio:.1f}x (FD {c.fd_synthetic:.1f} vs {c.fd_yardstick:.1f})"
            )
    return (
        f"In the {gap.description} ({gap.dim}-d), synthetic images are this many times as far "
        f"from the real training photos as held-out real photos are: {'; '.join(parts)}. "
        "1x means 'as close as new real photos'."
    )


def _pm(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "n/a"
    # sd 0: every draw took every image (equal counts), so there is no spread to show
    return f"{mean:.1f} ± {sd:.1f}" if sd else f"{mean:.1f}"


def _gap_rows(gap: FeatureSpaceGap) -> list[dict]:
    return [
        {
            "class": c.name,
            "images per set": c.n,
            "FD real-train ↔ synthetic": _pm(c.fd_synthetic, c.fd_synthetic_sd),
            "FD real-train ↔ real-test": _pm(c.fd_yardstick, c.fd_yardstick_sd),
            "ratio": _num(c.ratio, 1),
            "KID ↔ synthetic": _num(c.kid_synthetic, 3),
            "KID ↔ real-test": _num(c.kid_yardstick, 3),
        }
        for c in gap.classes
    ]


def _leakage_sentence(check: LeakageCheck) -> str:
    near = sorted(check.train_distances)
    calibration = (
        f"Calibration: the {len(near)} real training photos, different photos of the same "
        f"classes, lie at a distance of at least {near[0]:.2f} (median {near[len(near) // 2]:.2f})"
        f" from their nearest {check.test_set} image; {check.train_flagged} of them "
        f"{'crosses' if check.train_flagged == 1 else 'cross'} the thresholds"
        if near
        else "No real training photos to calibrate with"
    )
    warning = (
        ": the thresholds flag some different real photos too, so look at each suspect pair."
        if check.train_flagged
        else "."
    )
    return (
        f"Leakage audit ({check.test_set}): {check.n_suspect_images} of {check.n_synthetic} "
        f"synthetic images are suspect copies of one of its {check.n_test} images: feature "
        f"distance <= {check.distance_threshold} (1 is the typical distance between neighbouring"
        f" test photos) or perceptual hash within {check.hash_threshold} of 64 bits. "
        f"{calibration}{warning}"
    )


def _leakage_rows(checks: tuple[LeakageCheck, ...]) -> list[dict]:
    return [
        {
            "test set": c.test_set,
            "synthetic images": c.n_synthetic,
            "suspect images": c.n_suspect_images,
            "nearest distance, min / median": (
                f"{_num(min(c.synthetic_distances))} / "
                f"{_num(sorted(c.synthetic_distances)[len(c.synthetic_distances) // 2])}"
            ),
            "closest hash (bits)": min(c.synthetic_hash_min),
            "real-train false alarms": f"{c.train_flagged} of {len(c.train_distances)}",
        }
        for c in checks
    ]


def _cost_paragraph(diagnosis: Diagnosis) -> str:
    cost = diagnosis.cost
    where = f"on {cost.device} ({cost.dtype}) with {cost.model}"
    if cost.seconds is None:
        return (
            f"Generation cost: {cost.images} images {where}; too fast to time from {cost.source}."
        )
    return (
        f"Generation cost: {cost.images} images in {cost.seconds:.0f} s {where}, "
        f"{cost.seconds_per_image:.3g} s per image ({cost.source}). Seconds per accuracy point "
        f"charge the whole synthetic set to each recipe; the gain is the verdict's difference "
        f"(point estimate, mean over seeds) against {diagnosis.baseline}."
    )


def _cost_rows(diagnosis: Diagnosis) -> list[dict]:
    return [
        {
            "recipe": g.recipe,
            "test set": g.test_set,
            "seeds": g.seeds,
            "accuracy gain (points)": f"{g.gain_points:+.1f}",
            "generation seconds per point": (
                _num(g.seconds_per_point, 1) if g.seconds_per_point else "no gain"
            ),
        }
        for g in diagnosis.gains
    ]


def _pairs(diagnosis: Diagnosis, synthetic: TensorSet, test_sets: dict[str, TensorSet]):
    """(caption, image) of the suspect pairs, or of the closest pairs when none is suspect."""
    syn = load_tensor_set(synthetic.path).images
    suspects = [(c, p) for c in diagnosis.leakage for p in c.suspects][:MAX_PAIRS]
    if suspects:
        caption = f"suspect pairs ({diagnosis.n_suspect_images} on the main test set)"
        shown = [
            (c, p.synthetic_index, p.test_index, p.distance, p.hash_distance) for c, p in suspects
        ]
    elif diagnosis.leakage:
        main = diagnosis.leakage[0]
        caption = f"no suspect pair: the {len(main.closest)} closest pairs on {main.test_set}"
        shown = [(main, n.synthetic_index, n.test_index, n.distance, n.hash_distance)
                 for n in main.closest]  # fmt: skip
    else:
        return []
    tests = {c.test_set: load_tensor_set(test_sets[c.test_set].path).images for c, *_ in shown}
    pairs = [
        (syn[i].numpy(), tests[c.test_set][j].numpy(), f"distance {dist:.2f}, hash {bits} bits")
        for c, i, j, dist, bits in shown
    ]
    return [(caption, palette_image(pair_grid(pairs)))]


def diagnosis_section(
    diagnosis: Diagnosis, synthetic: TensorSet, test_sets: dict[str, TensorSet]
) -> Section:
    """The report section of `diagnosis`; suspect pairs are drawn from these tensor files."""
    paragraphs = [_gap_sentence(g) for g in diagnosis.gaps]
    n = min((c.n for g in diagnosis.gaps for c in g.classes), default=0)
    paragraphs.append(
        f"Each distance is a mean over equal-count draws (as few as {n} images per set): FD is "
        "biased upward at small n (about dim / n), the same for both columns, so compare the "
        "columns, not runs with other counts. The classifier trained on the real-train photos, "
        "which pulls them together in its space; a `feature_model` (CLIP, DINOv2) never saw them."
    )
    paragraphs += [_leakage_sentence(c) for c in diagnosis.leakage]
    paragraphs.append(_cost_paragraph(diagnosis))
    tables = [(f"domain gap: {g.space}", _gap_rows(g)) for g in diagnosis.gaps]
    tables.append(("leakage audit per test set", _leakage_rows(diagnosis.leakage)))
    if diagnosis.gains:
        tables.append(("generation cost per accuracy point", _cost_rows(diagnosis)))
    gap_caption = "domain gap per class (Fréchet distance, ± sd over draws)"
    near_caption = "distance to the nearest test image: synthetic vs real-train (calibration)"
    images = [
        (gap_caption, domain_gap_plot(diagnosis.gaps)),
        (near_caption, nearest_distance_plot(diagnosis.leakage)),
        *_pairs(diagnosis, synthetic, test_sets),
    ]
    return Section(TITLE, paragraphs=tuple(paragraphs), tables=tuple(tables), images=tuple(images))


def diagnosis_markdown(diagnosis: Diagnosis) -> str:
    """The section's sentences for the Prefect markdown artifact."""
    lines = [f"## {TITLE}", *[_gap_sentence(g) for g in diagnosis.gaps]]
    lines += [_leakage_sentence(c) for c in diagnosis.leakage]
    lines.append(_cost_paragraph(diagnosis))
    return "\n\n".join(lines)
