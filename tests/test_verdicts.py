"""study_verdicts: paired verdicts from evaluation records, the report's verdict and its JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from synth.config import RecipeConfig
from synth.evaluation import EvalRecord, compute_metrics, study_verdicts
from synth.reporting.html import render_html
from synth.reporting.verdict_section import verdict_markdown, verdict_sections

NAMES = ("apple", "banana", "orange")
N_BOOT = 400  # enough for the tests' coarse checks, and fast


def record(recipe, seed, labels, predictions, *, test_set="real-test", steps=70, real=12, syn=0):
    """An EvalRecord of the given predictions (probability 0.8 on the predicted class)."""
    y, pred = np.asarray(labels), np.asarray(predictions)
    proba = np.full((len(y), len(NAMES)), 0.1)
    proba[np.arange(len(y)), pred] = 0.8
    metrics = compute_metrics(y, proba, NAMES)
    return EvalRecord(
        recipe, seed, test_set, f"{recipe}-{seed}.pt", metrics,
        tuple(int(v) for v in pred), tuple(int(v) for v in y), steps, real, syn,
    )  # fmt: skip


def _recipes(*names_kinds):
    return [RecipeConfig(name=n, kind=k) for n, k in names_kinds]


# A hand-checkable fixture: 2 seeds x 6 test images.
Y = [0, 0, 1, 1, 2, 2]
BASE = {0: [0, 1, 1, 1, 2, 0], 1: [0, 0, 1, 2, 2, 2]}  # 4/6 and 5/6 right
CAND = {0: [0, 0, 1, 1, 2, 2], 1: [0, 0, 1, 1, 2, 0]}  # 6/6 and 5/6 right


def _fixture_records():
    return [record("real", s, Y, BASE[s]) for s in (0, 1)] + [
        record("mix", s, Y, CAND[s], syn=6) for s in (0, 1)
    ]


def test_study_verdicts_paired_differences_equal_hand_computed_ones():
    out = study_verdicts(
        _fixture_records(), _recipes(("real", "real"), ("mix", "mix")), n_boot=N_BOOT
    )
    (item,) = out.verdicts
    # accuracy: seed 0 6/6 - 4/6, seed 1 5/6 - 5/6; mean (2/6 + 0) / 2 = 1/6
    assert item.verdict.difference.mean == pytest.approx(1 / 6)
    assert item.verdict.candidate == "mix" and item.verdict.baseline == "real"
    f1 = [
        f1_score(Y, CAND[s], average="macro") - f1_score(Y, BASE[s], average="macro")
        for s in (0, 1)
    ]
    assert item.f1_macro.mean == pytest.approx(np.mean(f1))
    banana = [
        recall_score(Y, CAND[s], labels=[1], average="macro")
        - recall_score(Y, BASE[s], labels=[1], average="macro")
        for s in (0, 1)
    ]
    assert item.classes[1].name == "banana"
    assert item.classes[1].recall.mean == pytest.approx(np.mean(banana))  # (0 + 0.5) / 2
    score = {s.recipe: s for s in out.scores}
    assert score["real"].accuracy.mean == pytest.approx(9 / 12)
    assert score["mix"].accuracy.mean == pytest.approx(11 / 12)


def _one_seed(n=60, wrong_base=6, wrong_cand=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    base, cand = y.copy(), y.copy()
    base[:wrong_base] = (y[:wrong_base] + 1) % 3
    cand[n - wrong_cand :] = (y[n - wrong_cand :] + 2) % 3
    return [record("real", 0, y, base), record("real-plus-1x", 0, y, cand, syn=12)]


def test_one_seed_never_gives_a_zero_width_interval_nor_plus_minus_zero():
    recipes = _recipes(("real", "real"), ("real-plus-1x", "real-plus-synthetic"))
    out = study_verdicts(_one_seed(), recipes, n_boot=N_BOOT)
    (item,) = out.verdicts
    diff = item.verdict.difference
    assert diff.n_seeds == 1 and diff.high > diff.low
    assert "one seed" in item.verdict.sentence
    assert all(s.accuracy.high > s.accuracy.low for s in out.scores)
    html = render_html("t", verdict_sections(out))
    markdown = verdict_markdown(out)
    for text in (html, markdown, item.verdict.sentence):
        assert "± 0" not in text and "±0" not in text
    assert "One seed" in markdown


def test_an_accuracy_interval_stays_within_0_and_1():
    # one seed, 1 and 59 of 60 right: the few-seed widening alone would pass 1 and 0
    recipes = _recipes(("real", "real"), ("real-plus-1x", "real-plus-synthetic"))
    out = study_verdicts(_one_seed(wrong_base=59, wrong_cand=1), recipes, n_boot=N_BOOT)
    for score in out.scores:
        acc = score.accuracy
        assert 0.0 <= acc.low < acc.mean < acc.high <= 1.0, acc


def test_verdict_flips_from_no_detectable_difference_to_helps_as_the_gap_grows():
    recipes = _recipes(("real", "real"), ("real-plus-1x", "real-plus-synthetic"))
    small = study_verdicts(_one_seed(60, 4, 2), recipes, n_boot=N_BOOT).verdicts[0]
    large = study_verdicts(_one_seed(60, 30, 2), recipes, n_boot=N_BOOT).verdicts[0]
    assert small.verdict.label == "no detectable difference"
    assert "could detect a difference of about" in small.verdict.sentence
    assert large.verdict.label == "helps"


def test_synthetic_only_is_judged_as_replacement_within_the_margin():
    y = np.arange(90) % 3
    records = [
        record("real", 0, y, y),
        record("synthetic", 0, y, np.where(np.arange(90) < 45, (y + 1) % 3, y), real=0, syn=12),
    ]
    out = study_verdicts(
        records, _recipes(("real", "real"), ("synthetic", "synthetic")), margin=0.05,
        n_boot=N_BOOT,
    )  # fmt: skip
    (item,) = out.verdicts
    assert item.verdict.kind == "replacement" and item.verdict.margin == 0.05
    assert item.verdict.label == "does not replace"
    assert "-0.050" in item.verdict.sentence


def test_budget_is_stated_and_unequal_steps_are_flagged():
    equal = study_verdicts(
        _fixture_records(), _recipes(("real", "real"), ("mix", "mix")), n_boot=N_BOOT
    )
    assert "equal optimiser steps (70 per model)" in equal.verdicts[0].verdict.sentence
    assert equal.budget.startswith("equal optimiser steps, 70 per model")
    records = _fixture_records()[:2] + [
        record("mix", s, Y, CAND[s], steps=140, syn=6) for s in (0, 1)
    ]
    out = study_verdicts(
        records, _recipes(("real", "real"), ("mix", "mix")), budget="epochs", n_boot=N_BOOT
    )
    assert "unequal optimiser steps (mix 140, real 70)" in out.verdicts[0].verdict.sentence
    assert "train.budget = 'epochs'" in out.budget


def test_cheap_baseline_meets_only_recipes_with_synthetic_images():
    records = _fixture_records() + [record("real-augmented", s, Y, BASE[s]) for s in (0, 1)]
    recipes = _recipes(("real", "real"), ("real-augmented", "real-augmented"), ("mix", "mix"))
    out = study_verdicts(records, recipes, n_boot=N_BOOT)
    pairs = [(v.verdict.baseline, v.verdict.candidate) for v in out.verdicts]
    assert pairs == [("real", "real-augmented"), ("real", "mix"), ("real-augmented", "mix")]


def test_missing_baseline_gives_a_notice_not_an_error():
    out = study_verdicts(_fixture_records()[2:], _recipes(("mix", "mix")), n_boot=N_BOOT)
    assert out.verdicts == ()
    assert any("baseline recipe 'real' was not trained" in n for n in out.notices)


def test_shots_family_gives_the_exchange_rate_on_the_curve():
    # Real-only accuracy 0.6 / 0.8 / 0.9 at 25 / 50 / 100 real images; the mixed recipe at 25
    # real + 300 synthetic reaches 0.8: worth about 25 real images.
    y = np.arange(200) % 3

    def wrong(share):
        pred = y.copy()
        k = round(200 * (1 - share))
        pred[:k] = (y[:k] + 1) % 3
        return pred

    records = [
        record("shots-025", 0, y, wrong(0.6), real=25),
        record("shots-050", 0, y, wrong(0.8), real=50),
        record("real", 0, y, wrong(0.9), real=100),
        record("shots-025-syn", 0, y, wrong(0.8), real=25, syn=300),
    ]
    recipes = [
        RecipeConfig(name="real", kind="real"),
        RecipeConfig(name="shots-025", kind="shots", real_fraction=0.25),
        RecipeConfig(name="shots-050", kind="shots", real_fraction=0.5),
        RecipeConfig(name="shots-025-syn", kind="shots", real_fraction=0.25, shots_synthetic="all"),
    ]
    out = study_verdicts(records, recipes, n_boot=N_BOOT)
    (entry,) = out.exchange
    assert entry.curve == ("shots-025", "shots-050", "real")
    assert entry.rate.worth == pytest.approx(25)
    assert entry.rate.gain_per_1000 == pytest.approx(0.2 / 300 * 1000)
    assert "300 synthetic images were worth about 25 real images" in entry.rate.sentence
    assert [v.verdict.candidate for v in out.verdicts] == []  # shots: the exchange rate only
    assert "worth about 25 real images" in verdict_markdown(out)
    assert out.to_dict()["exchange"][0]["curve"] == ["shots-025", "shots-050", "real"]


def test_to_dict_is_json_with_the_documented_keys():
    out = study_verdicts(
        _fixture_records(), _recipes(("real", "real"), ("mix", "mix")), n_boot=N_BOOT
    )
    data = json.loads(json.dumps(out.to_dict(), allow_nan=False))
    assert {"baseline", "replacement_margin", "budget", "recipes", "verdicts", "exchange"} <= set(
        data
    )
    verdict = data["verdicts"][0]
    assert {"recipe", "baseline", "test_set", "label", "sentence", "accuracy", "f1_macro"} <= set(
        verdict
    )
    assert {"mean", "low", "high", "mde", "n_seeds", "n_images", "one_seed"} <= set(
        verdict["accuracy"]
    )
    assert verdict["classes"][0]["name"] == "apple"
