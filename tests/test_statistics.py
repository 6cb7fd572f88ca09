"""Paired statistics: hand-computed differences, verdict rules, interval coverage, exchange rate."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit
from sklearn.metrics import f1_score, precision_score, recall_score

from synth.evaluation.statistics import (
    PairedDifference,
    class_summary,
    exchange_rate,
    minimum_detectable_difference,
    paired_difference,
    paired_metric_difference,
    per_class_differences,
    verdict,
)


def _correctness(rng, n_seeds, n_images, delta, *, sd_seed=0.15, sd_image=1.5, shared=0.7):
    """1/0 correctness of a baseline and a candidate on shared images, with a logit shift `delta`.

    Each image has a difficulty shared by both recipes and all seeds, and each seed of each
    recipe a training effect. For a `shared` fraction of (seed, image) cells both recipes use
    the same uniform draw, so they tend to fail on the same images: the pairing the bootstrap
    must exploit.
    """
    difficulty = rng.normal(2.0, sd_image, n_images)
    u, v = rng.normal(0, sd_seed, (2, n_seeds, 1))
    draw = rng.random((n_seeds, n_images))
    other = np.where(rng.random((n_seeds, n_images)) < shared, draw, rng.random(draw.shape))
    base = draw < expit(difficulty + u)
    cand = other < expit(difficulty + v + delta)
    return base.astype(float), cand.astype(float)


def _true_difference(delta, *, sd_seed, sd_image=1.5, n=2_000_000):
    """Population accuracy difference over images and training seeds, by Monte Carlo."""
    rng = np.random.default_rng(99)
    difficulty = rng.normal(2.0, sd_image, n)
    u, v = rng.normal(0, sd_seed, (2, n))
    return float(expit(difficulty + v + delta).mean() - expit(difficulty + u).mean())


def test_paired_difference_equals_hand_computed_mean():
    base = np.array([[1, 0, 1, 1], [1, 1, 0, 0]])
    cand = np.array([[1, 1, 1, 1], [0, 1, 1, 1]])
    # per seed: (4 - 3) / 4 = 0.25 and (3 - 2) / 4 = 0.25
    diff = paired_difference(base, cand, n_boot=500)
    assert diff.mean == pytest.approx(0.25)
    assert (diff.n_seeds, diff.n_images, diff.n_boot) == (2, 4, 500)
    assert diff.low < diff.mean < diff.high


def test_paired_difference_is_reproducible_and_fast():
    base, cand = _correctness(np.random.default_rng(0), 3, 300, 0.5)
    start = time.perf_counter()
    first = paired_difference(base, cand, n_boot=2000, seed=5)
    elapsed = time.perf_counter() - start
    assert first == paired_difference(base, cand, n_boot=2000, seed=5)
    assert elapsed < 1.0, f"2000 replicates of 3 seeds x 300 images took {elapsed:.2f} s"


@pytest.mark.parametrize(("delta", "label"), [(1.5, "helps"), (-1.5, "hurts")])
def test_verdict_detects_a_known_effect(delta, label):
    base, cand = _correctness(np.random.default_rng(1), 3, 200, delta)
    result = verdict(paired_difference(base, cand))
    assert result.label == label
    assert result.sentence.startswith(f"real+synthetic {label}: accuracy ")
    assert "3 seeds x 200 test images" in result.sentence


def test_same_distribution_gives_no_detectable_difference_with_nonzero_width():
    base, cand = _correctness(np.random.default_rng(2), 3, 55, 0.0)
    assert not np.array_equal(base, cand)
    diff = paired_difference(base, cand)
    result = verdict(diff)
    assert result.label == "no detectable difference"
    assert diff.high - diff.low > 0.01
    assert diff.mde is not None and diff.mde > 0
    assert f"about {diff.mde:.3f} or more" in result.sentence


def test_identical_predictions_give_a_point_and_say_so():
    base, _ = _correctness(np.random.default_rng(3), 3, 55, 0.0)
    diff = paired_difference(base, base)
    assert diff.degenerate and diff.mean == diff.low == diff.high == 0.0
    assert "same difference" in diff.notice
    assert diff.mde is not None and diff.mde > 0  # from the baseline's own spread
    result = verdict(diff)
    assert result.label == "no detectable difference"
    assert "no interval" in result.sentence and "±" not in result.sentence


def test_one_seed_interval_comes_from_test_images_and_says_so():
    base, cand = _correctness(np.random.default_rng(4), 1, 55, 1.0)
    assert not np.array_equal(base, cand)
    diff = paired_difference(base, cand)
    assert diff.one_seed and diff.high > diff.low
    assert "test images resampled" in diff.method
    assert diff.notice.startswith("one seed")
    sentence = verdict(diff).sentence
    assert "1 seed x 55 test images" in sentence and "one seed" in sentence


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    st.integers(min_value=2, max_value=80).flatmap(
        lambda n: st.tuples(
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
        )
    )
)
def test_one_seed_interval_has_zero_width_only_without_any_spread(pair):
    base, cand = (np.array([row], dtype=float) for row in pair)
    diff = paired_difference(base, cand, n_boot=200)
    constant = np.ptp(cand - base) == 0
    assert diff.degenerate == constant
    assert "±" not in verdict(diff).sentence


def test_verdict_flips_from_no_detectable_difference_to_helps_as_effect_grows():
    labels = []
    for delta in (0.0, 0.1, 2.0):
        base, cand = _correctness(np.random.default_rng(6), 5, 150, delta)
        labels.append(verdict(paired_difference(base, cand)).label)
    assert labels[0] == "no detectable difference"
    assert labels[-1] == "helps"


@pytest.mark.parametrize(("n_seeds", "sd_seed"), [(3, 0.3), (1, 0.0), (5, 0.3)])
def test_interval_coverage_is_near_nominal_on_simulated_recipes(n_seeds, sd_seed):
    """95% intervals cover the true difference in 90-99% of 400 simulated studies.

    A broken bootstrap misses the band: with seed-to-seed variation, the naive interval that
    treats every seed x image cell as an independent image is checked to fall outside it.
    """
    truth = _true_difference(0.4, sd_seed=sd_seed)
    rng = np.random.default_rng(11)
    hits = naive_hits = 0
    repeats = 400
    for r in range(repeats):
        base, cand = _correctness(rng, n_seeds, 55, 0.4, sd_seed=sd_seed)
        diff = paired_difference(base, cand, n_boot=300, seed=r)
        hits += diff.low <= truth <= diff.high
        cells = cand - base
        naive_hits += abs(cells.mean() - truth) <= 1.96 * cells.std() / np.sqrt(cells.size)
    assert 0.90 <= hits / repeats <= 0.99
    if sd_seed > 0:
        assert naive_hits / repeats < 0.90


def test_replacement_verdict_follows_the_margin():
    diff = PairedDifference(
        "accuracy", -0.005, -0.015, 0.006, 0.95, 0.005, 0.014, 3, 55, 2000, "fixture", None
    )
    wide = verdict(diff, kind="replacement", margin=0.02, candidate="synthetic-only")
    narrow = verdict(diff, kind="replacement", margin=0.01, candidate="synthetic-only")
    assert wide.label == "replaces" and wide.margin == 0.02
    assert "within a margin of 0.020" in wide.sentence
    assert narrow.label == "does not replace"
    assert "-0.010" in narrow.sentence
    assert verdict(diff).label == "no detectable difference" and verdict(diff).margin is None


def test_verdict_sentence_names_budget_test_set_and_leakage():
    base, cand = _correctness(np.random.default_rng(7), 3, 80, 1.5)
    sentence = verdict(
        paired_difference(base, cand),
        test_set="grocery-fruits",
        budget="equal optimiser steps",
        leakage_suspects=2,
    ).sentence
    assert "80 grocery-fruits images" in sentence
    assert "budget: equal optimiser steps" in sentence
    assert "2 synthetic image(s)" in sentence


def test_minimum_detectable_difference_follows_the_formula():
    # (z_0.975 + z_0.8) * SE = (1.95996 + 0.84162) * 0.01
    assert minimum_detectable_difference(0.01) == pytest.approx(0.0280158, rel=1e-5)
    with pytest.raises(ValueError, match="standard_error"):
        minimum_detectable_difference(-1.0)


def _predictions(seed, n_seeds, n_images, n_classes=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_images)
    noise = rng.integers(0, n_classes, (2, n_seeds, n_images))
    base = np.where(rng.random((n_seeds, n_images)) < 0.7, y, noise[0])
    cand = np.where(rng.random((n_seeds, n_images)) < 0.8, y, noise[1])
    return y, base, cand


@pytest.mark.parametrize(
    ("metric", "score"),
    [("f1_macro", f1_score), ("recall_macro", recall_score), ("precision_macro", precision_score)],
)
def test_macro_metric_difference_matches_scikit_learn(metric, score):
    y, base, cand = _predictions(8, 3, 120)

    def sk(pred):
        return np.mean(
            [score(y, p, average="macro", labels=range(5), zero_division=0) for p in pred]
        )

    diff = paired_metric_difference(y, base, cand, metric, n_classes=5, n_boot=200)
    assert diff.mean == pytest.approx(sk(cand) - sk(base))
    assert diff.low < diff.mean < diff.high


def test_callable_metric_gives_the_vectorised_interval_on_the_same_draws():
    y, base, cand = _predictions(13, 2, 60)

    def macro_f1(y_true, y_pred):  # scikit-learn's definition in numpy (sklearn is 50x slower)
        scores = []
        for k in range(4):
            hits, sizes = (
                ((y_true == k) & (y_pred == k)).sum(),
                (y_true == k).sum() + (y_pred == k).sum(),
            )
            scores.append(2 * hits / sizes if sizes else 0.0)
        return float(np.mean(scores))

    fast = paired_metric_difference(y, base, cand, "f1_macro", n_classes=4, n_boot=200)
    slow = paired_metric_difference(y, base, cand, macro_f1, n_boot=200)
    assert slow.metric == "macro_f1"
    assert (slow.mean, slow.low, slow.high) == pytest.approx((fast.mean, fast.low, fast.high))


def test_per_class_differences_flag_absent_classes_and_find_the_helped_one():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, 150)  # class 3 never appears
    base = np.where(rng.random((3, 150)) < 0.6, y, rng.integers(0, 4, (3, 150)))
    cand = base.copy()
    cand[:, y == 1] = 1  # the candidate gets every class-1 image right
    per_class = per_class_differences(y, base, cand, ["a", "b", "c", "d"], n_boot=500)
    assert [c.name for c in per_class] == ["a", "b", "c", "d"]
    assert per_class[3].recall is None and "no test image" in per_class[3].reason
    assert per_class[1].recall.low > 0
    assert per_class[0].recall.degenerate  # same predictions on class a: no spread in recall
    assert class_summary(per_class).startswith("Per-class recall: helps b (+")
    assert class_summary(per_class).endswith("; no detectable difference for 3 classes.")
    assert class_summary(per_class[1:2]).endswith(")."), "no count of 0 unclear classes"
    assert class_summary(per_class[:1]) == "Per-class recall: no detectable difference for 1 class."


def _shots(rng, counts, n_seeds, n_images, equivalent):
    """Real-only curve accuracy = 0.5 + 0.08 ln(n / 50), and a mixed recipe at `equivalent`."""
    draw = rng.random((n_seeds, n_images))  # shared: paired across recipes

    def acc(n):
        return 0.5 + 0.08 * np.log(n / 50)

    real = np.stack([(draw < acc(n)).astype(float) for n in counts])
    return real, (draw < acc(equivalent)).astype(float)


def test_exchange_rate_recovers_a_known_ratio():
    counts = [50, 125, 250, 500]
    real, mixed = _shots(np.random.default_rng(10), counts, 3, 400, equivalent=200)
    rate = exchange_rate(counts, real, 125, 1000, mixed, n_boot=500)
    assert rate.worth == pytest.approx(75, abs=10)
    assert rate.worth_low <= 75 <= rate.worth_high
    assert rate.clipped is None
    # 1,000 synthetic images: the gain per 1,000 is the whole accuracy difference at 125 real
    assert rate.gain_per_1000 == pytest.approx(mixed.mean() - real[1].mean())
    assert rate.sentence.startswith("1,000 synthetic images were worth about")


@pytest.mark.parametrize(
    ("equivalent", "clipped", "words"), [(900, "above", "more than"), (20, "below", "cost")]
)
def test_exchange_rate_clips_outside_the_real_only_curve(equivalent, clipped, words):
    counts = [50, 125, 250, 500]
    real, mixed = _shots(np.random.default_rng(12), counts, 1, 400, equivalent=equivalent)
    rate = exchange_rate(counts, real, 125, 1000, mixed, n_boot=300)
    assert rate.clipped == clipped
    assert words in rate.sentence and "outside the real-only curve" in rate.sentence


def test_inputs_are_checked_before_any_work():
    ones = np.ones((2, 5))
    with pytest.raises(ValueError, match="candidate_correct"):
        paired_difference(ones, np.ones((2, 6)))
    with pytest.raises(ValueError, match="n_boot"):
        paired_difference(ones, ones, n_boot=10)
    with pytest.raises(ValueError, match="kind"):
        verdict(paired_difference(ones, ones), kind="maybe")
    with pytest.raises(ValueError, match="mixed_real_count"):
        exchange_rate([50, 100], np.ones((2, 2, 5)), 70, 100, ones)
