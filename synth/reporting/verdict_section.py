"""The top of the report: the verdicts in words and numbers, the forest plot, the exchange rate
and the per-class differences, as HTML sections and as markdown (the `experiment-verdict`
artifact). Pure: it takes a `StudyVerdicts` and returns sections and strings.
"""

from __future__ import annotations

import numpy as np

from synth.evaluation.statistics import PairedDifference
from synth.evaluation.study_verdicts import RecipeScore, RecipeVerdict, StudyVerdicts
from synth.figures import palette_image
from synth.reporting.html import Section
from synth.reporting.markdown import markdown_table
from synth.reporting.plots import class_difference_heatmap, forest_plot, shot_curve_plot

__all__ = ["headlines", "verdict_markdown", "verdict_rows", "verdict_sections"]

ONE_SEED_NOTE = (
    "One seed: every interval here covers test-image sampling only, not training randomness, "
    "so the true uncertainty is larger by an unknown amount. Use 5 seeds for claims "
    "(configs/study-5seeds.toml)."
)
MANY_VERDICTS_NOTE = (
    "Each verdict is its own 95% statement, with no correction for the number of recipes and "
    "test sets: with many of them, one spurious 'helps' or 'hurts' is likely. Treat all but the "
    "comparison you set out to make as exploratory."
)


TABLE_CAPTION = "Changes are recipe minus baseline; brackets hold 95% intervals"


def _change(diff: PairedDifference) -> str:
    if diff.degenerate:
        return f"{diff.mean:+.3f} (no interval: identical results)"
    return f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]"


def _level(diff: PairedDifference) -> str:
    return f"{diff.mean:.3f} [{diff.low:.3f}, {diff.high:.3f}]"


def _images(score: RecipeScore | None) -> str:
    if score is None or score.real_images is None:
        return "n/a"
    return f"{score.real_images:,} + {score.synthetic_images or 0:,}"


def _scores(verdicts: StudyVerdicts, test_set: str) -> dict[str, RecipeScore]:
    return {s.recipe: s for s in verdicts.scores if s.test_set == test_set}


def verdict_rows(verdicts: StudyVerdicts, baseline: str, test_set: str) -> list[dict]:
    """One row per recipe against `baseline` on `test_set`, the baseline itself first."""
    scores = _scores(verdicts, test_set)
    items = verdicts.against(baseline, test_set)
    rows = []
    for name, item in [(baseline, None), *((i.verdict.candidate, i) for i in items)]:
        score = scores.get(name)
        diff = item.verdict.difference if item else None
        label = "baseline" if item is None else item.verdict.label
        if item is not None and item.verdict.kind == "replacement":
            label += f" (margin {verdicts.margin:.3f})"
        mde = "" if diff is None or diff.mde is None else f"{diff.mde:.3f}"
        rows.append(
            {
                "Recipe": name,
                "Verdict": label,
                f"Accuracy change vs {baseline}": _change(diff) if diff else "",
                "Smallest detectable change": mde,
                "Macro-F1 change": _change(item.f1_macro) if item else "",
                "Accuracy": _level(score.accuracy) if score else "n/a",
                "Optimiser steps": f"{score.steps:,}" if score and score.steps else "n/a",
                "Images: real + synthetic": _images(score),
            }
        )
    return rows


def _without_one_seed(text: str, verdicts: StudyVerdicts) -> str:
    """`text` without the one-seed notice, which the answer's note states once."""
    notices = (s.accuracy.notice for s in verdicts.scores if s.accuracy.notice)
    one_seed = {p for n in notices for p in n.split("; ") if p.startswith("one seed")}
    for notice in one_seed:
        text = text.replace(f"; {notice}", "")
    return text


def _short(item: RecipeVerdict) -> str:
    """The verdict sentence without what every sentence of the section repeats (stated once)."""
    text, diff = item.verdict.sentence, item.verdict.difference
    if diff.notice:
        text = text.replace(f"; {diff.notice}", "")
    return text.split("; budget: ")[0].rstrip(".") + "."


def _design(verdicts: StudyVerdicts) -> str:
    seeds = max((s.seeds for s in verdicts.scores), default=0)
    sizes = {s.test_set: s.accuracy.n_images for s in verdicts.scores}
    sets = ", ".join(f"{sizes.get(t, 0)} {t} images" for t in verdicts.test_sets)
    return f"{seeds} seed{'s' if seeds != 1 else ''} x ({sets})"


def _intro(verdicts: StudyVerdicts) -> str:
    return (
        f"Every recipe is compared with {verdicts.baseline} on the same seeds and the same test "
        f"images (paired): {_design(verdicts)}. Budget: {verdicts.budget}. A recipe helps when "
        "the 95% interval of its accuracy change lies above 0, hurts when below 0; otherwise "
        "there is no detectable difference, and the smallest change this run could have "
        "detected is given. A synthetic-only recipe replaces the baseline when its whole "
        f"interval lies above -{verdicts.margin:.3f} (the margin fixed before the run)."
    )


def _notes(verdicts: StudyVerdicts, first: str | None = None) -> str:
    one_seed = any(s.seeds == 1 for s in verdicts.scores)
    notes = [first] if first else []
    notes += ([ONE_SEED_NOTE] if one_seed else []) + [MANY_VERDICTS_NOTE, *verdicts.notices]
    return " ".join(n if n.endswith(".") else n + "." for n in notes)


def headlines(verdicts: StudyVerdicts) -> tuple[str, ...]:
    """One line per test set: which recipes help, hurt, replace ... the baseline, at a glance."""
    lines = []
    for test_set in verdicts.test_sets:
        items = verdicts.against(verdicts.baseline, test_set)
        if not items:
            continue
        groups: dict[str, list[str]] = {}
        for item in items:
            groups.setdefault(item.verdict.label, []).append(item.verdict.candidate)
        said = "; ".join(f"{label}: {', '.join(names)}" for label, names in groups.items())
        images = items[0].verdict.difference.n_images
        lines.append(f"On {test_set} ({images} images), against {verdicts.baseline}: {said}.")
    return tuple(lines)


def _forest(verdicts: StudyVerdicts):
    panels = {
        t: [
            (
                i.verdict.candidate,
                i.verdict.difference.mean,
                i.verdict.difference.low,
                i.verdict.difference.high,
                i.verdict.label,
            )
            for i in verdicts.against(verdicts.baseline, t)
        ]  # fmt: skip
        for t in verdicts.test_sets
    }
    figure = forest_plot(
        panels, xlabel=f"accuracy change vs {verdicts.baseline}", margin=verdicts.margin
    )
    return palette_image(figure)


def _test_set_sections(verdicts: StudyVerdicts) -> list[Section]:
    sections = []
    for test_set in verdicts.test_sets:
        for base in dict.fromkeys(b for b in (verdicts.baseline, verdicts.cheap_baseline) if b):
            items = verdicts.against(base, test_set)
            if not items:
                continue
            cheap = base != verdicts.baseline
            title = f"On {test_set}: " + (
                f"recipes with synthetic images vs {base} (the cheap alternative)"
                if cheap
                else f"every recipe vs {base}"
            )
            sections.append(
                Section(
                    title,
                    bullets=tuple(_short(i) for i in items),
                    tables=((TABLE_CAPTION, verdict_rows(verdicts, base, test_set)),),
                    css_class=None if cheap else "answer",
                )
            )
    return sections


def _exchange_section(verdicts: StudyVerdicts) -> Section | None:
    if not verdicts.exchange:
        return None
    panels = {}
    for test_set in verdicts.test_sets:
        scores = _scores(verdicts, test_set)
        rates = [e for e in verdicts.exchange if e.test_set == test_set]
        if not rates:
            continue
        curve = [scores[name] for name in rates[0].curve]
        mixed = [scores[e.recipe] for e in rates]
        panels[test_set] = (
            [(s.real_images, s.accuracy.mean, s.accuracy.low, s.accuracy.high) for s in curve],
            sorted(
                (
                    s.real_images,
                    s.accuracy.mean,
                    s.accuracy.low,
                    s.accuracy.high,
                    s.synthetic_images,
                )
                for s in mixed
            ),  # fmt: skip
        )
    return Section(
        "What the synthetic images were worth in real images",
        paragraphs=(
            "The shots recipes train on a share of the real images, without and with the "
            "synthetic set; the real-only curve converts the synthetic images' effect into real "
            "images (no extrapolation beyond the counts tried).",
        ),
        bullets=tuple(
            f"{e.recipe} on {e.test_set}: {_without_one_seed(e.rate.sentence, verdicts)}"
            for e in verdicts.exchange
        ),
        images=(
            (
                "accuracy against real images used (95% intervals)",
                palette_image(shot_curve_plot(panels)),
            ),
        ),  # fmt: skip
    )


def _class_section(verdicts: StudyVerdicts) -> Section | None:
    panels, sentences = {}, []
    for test_set in verdicts.test_sets:
        items = [i for i in verdicts.against(verdicts.baseline, test_set) if i.classes]
        if not items:
            continue
        classes = [c.name for c in items[0].classes]
        values = np.array([[np.nan if c.recall is None else c.recall.mean for c in i.classes]
                           for i in items])  # fmt: skip
        clear = np.array([[c.recall is not None and (c.recall.low > 0 or c.recall.high < 0)
                           for c in i.classes] for i in items])  # fmt: skip
        panels[test_set] = ([i.verdict.candidate for i in items], classes, values, clear)
        sentences += [
            f"{i.verdict.candidate} on {test_set}: "
            + (i.classes_sentence or "").removeprefix("Per-class recall: ")
            for i in items
        ]
    if not panels:
        return None
    return Section(
        f"Per class: where the recipes help or hurt, vs {verdicts.baseline}",
        bullets=tuple(sentences),
        images=(
            (
                "recall change per class (* interval excludes 0)",
                palette_image(class_difference_heatmap(panels)),
            ),
        ),  # fmt: skip
    )


def verdict_sections(verdicts: StudyVerdicts, note: str | None = None) -> list[Section]:
    """The report's opening sections: the answer, each test set's verdicts, worth, per class.

    `note` (e.g. that the synthetic images carry no class signal) leads the answer's note.
    """
    answer = Section(
        "The answer: does synthetic data help, replace or hurt?",
        lead=headlines(verdicts),
        paragraphs=(_intro(verdicts),),
        note=_notes(verdicts, note),
        images=((f"accuracy change vs {verdicts.baseline}, 95% intervals", _forest(verdicts)),),
        css_class="answer",
    )
    sections = [answer, *_test_set_sections(verdicts)]
    extra = [_exchange_section(verdicts), _class_section(verdicts)]
    return sections + [s for s in extra if s is not None]


def verdict_markdown(
    verdicts: StudyVerdicts, title: str = "Verdict", note: str | None = None
) -> str:
    """The verdicts as markdown (no images): the `experiment-verdict` artifact."""
    parts = [f"# {title}", *(f"- **{line}**" for line in headlines(verdicts))]
    parts += [_intro(verdicts), f"> {_notes(verdicts, note)}"]
    for section in _test_set_sections(verdicts):
        parts.append(f"## {section.title}")
        parts += [f"- {b}" for b in section.bullets]
        parts.append(markdown_table(section.tables[0][1]))
    for extra in (_exchange_section(verdicts), _class_section(verdicts)):
        if extra is not None:
            parts.append(f"## {extra.title}")
            parts += [f"- {b}" for b in extra.bullets]
    return "\n\n".join(parts)
