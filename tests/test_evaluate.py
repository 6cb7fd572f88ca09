"""Evaluation metrics against hand-computed values, and properties over a metric registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from synth.evaluation import (
    ClassReport,
    Misclassified,
    compute_metrics,
    evaluate_model,
    predict_proba,
)

NAMES3 = ("apple", "banana", "orange")


def _proba_for(pred: list[int], n_classes: int, confidence: float = 0.7) -> np.ndarray:
    """Probabilities whose argmax is `pred`, the rest spread evenly."""
    rest = (1 - confidence) / (n_classes - 1)
    proba = np.full((len(pred), n_classes), rest)
    proba[np.arange(len(pred)), pred] = confidence
    return proba


# 6 samples, 3 classes: y_true = [0,0,1,1,2,2], predicted = [0,1,1,1,2,0]
Y6 = [0, 0, 1, 1, 2, 2]
PRED6 = [0, 1, 1, 1, 2, 0]


def test_compute_metrics_matches_hand_computed_values():
    proba = _proba_for(PRED6, 3)
    proba[5] = [0.6, 0.1, 0.3]  # a distinct confidence for the second mistake
    m = compute_metrics(Y6, proba, NAMES3)

    # confusion by hand, rows true: apple 1 right 1 as banana; banana 2 right; orange 1 as apple
    assert m.confusion == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    # precision = TP / column sum: 1/2, 2/3, 1/1; recall = TP / row sum: 1/2, 2/2, 1/2
    # f1 = 2PR/(P+R): 0.5, 2*(2/3)/(5/3) = 0.8, 2*0.5/1.5 = 2/3
    expected = (
        ClassReport("apple", 0.5, 0.5, 0.5, 2),
        ClassReport("banana", 2 / 3, 1.0, 0.8, 2),
        ClassReport("orange", 1.0, 0.5, 2 / 3, 2),
    )
    for got, want in zip(m.per_class, expected, strict=True):
        assert got.name == want.name and got.support == want.support
        assert (got.precision, got.recall, got.f1) == pytest.approx(
            (want.precision, want.recall, want.f1)
        )
    assert m.accuracy == pytest.approx(4 / 6)
    assert m.precision_macro == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert m.recall_macro == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert m.f1_macro == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # equal supports: weighted averages equal the macro ones
    assert m.f1_weighted == pytest.approx(m.f1_macro)
    assert m.n_samples == 6 and m.class_names == NAMES3


def test_compute_metrics_misclassified_lists_exact_mistakes():
    proba = _proba_for(PRED6, 3)
    proba[5] = [0.6, 0.1, 0.3]
    m = compute_metrics(Y6, proba, NAMES3)
    assert m.misclassified == (
        Misclassified(index=1, true=0, predicted=1, confidence=pytest.approx(0.7)),
        Misclassified(index=5, true=2, predicted=0, confidence=pytest.approx(0.6)),
    )


def test_compute_metrics_weighted_differs_from_macro_when_imbalanced():
    # 4 x class 0, 1 x class 1; one class-0 sample predicted as 1
    m = compute_metrics([0, 0, 0, 0, 1], _proba_for([0, 0, 0, 1, 1], 2), ("a", "b"))
    # class 0: P=3/3, R=3/4, F1=6/7; class 1: P=1/2, R=1, F1=2/3
    assert m.precision_macro == pytest.approx(0.75)
    assert m.precision_weighted == pytest.approx((4 * 1.0 + 1 * 0.5) / 5)
    assert m.recall_macro == pytest.approx(0.875)
    assert m.recall_weighted == pytest.approx(0.8)
    assert m.f1_macro == pytest.approx((6 / 7 + 2 / 3) / 2)
    assert m.f1_weighted == pytest.approx((4 * 6 / 7 + 2 / 3) / 5)


def test_compute_metrics_roc_auc_perfect_classifier_is_one():
    m = compute_metrics(Y6, _proba_for(Y6, 3, confidence=0.9), NAMES3)
    assert m.roc_auc_ovr == 1.0 and m.roc_auc_reason is None
    assert [c.auc for c in m.roc_curves] == [1.0, 1.0, 1.0]
    assert [c.average_precision for c in m.pr_curves] == [1.0, 1.0, 1.0]


def test_compute_metrics_roc_auc_reversed_classifier_is_zero():
    # the true class always gets the lowest probability
    proba = np.full((6, 3), 0.5)
    proba[np.arange(6), Y6] = 0.0
    m = compute_metrics(Y6, proba, NAMES3)
    assert m.roc_auc_ovr == 0.0
    assert [c.auc for c in m.roc_curves] == [0.0, 0.0, 0.0]


def test_compute_metrics_binary_roc_auc_matches_hand_value():
    # scores of class 1: positives 0.35, 0.8 vs negatives 0.1, 0.4 -> 3 of 4 pairs ordered
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = compute_metrics([0, 0, 1, 1], np.stack([1 - p1, p1], axis=1), ("neg", "pos"))
    assert m.roc_auc_ovr == pytest.approx(0.75)
    assert m.roc_curves[1].auc == pytest.approx(0.75)
    assert m.roc_curves[1].fpr[0] == 0.0 and m.roc_curves[1].tpr[-1] == 1.0


def test_compute_metrics_absent_class_gives_roc_auc_none_with_reason():
    m = compute_metrics([0, 0, 1, 1], _proba_for([0, 1, 1, 2], 3), NAMES3)
    assert m.roc_auc_ovr is None
    assert "orange" in m.roc_auc_reason and "absent" in m.roc_auc_reason
    assert m.summary()["roc_auc_ovr"] is None
    assert m.roc_curves[2].auc is None and m.roc_curves[2].fpr == ()
    assert m.pr_curves[2].average_precision is None
    # zero_division=0: the absent class scores 0, no warning-driven NaN
    assert m.per_class[2].precision == 0.0 and m.per_class[2].support == 0


def test_compute_metrics_summary_has_headline_numbers():
    m = compute_metrics(Y6, _proba_for(PRED6, 3), NAMES3)
    summary = m.summary()
    assert list(summary) == [
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "precision_weighted",
        "recall_weighted",
        "f1_weighted",
        "roc_auc_ovr",
    ]
    assert summary["accuracy"] == m.accuracy and summary["f1_macro"] == m.f1_macro


@pytest.mark.parametrize(
    ("y_true", "proba", "names", "match"),
    [
        ([0, 1], np.full((2, 3), 1 / 3), ("a", "b"), "proba"),
        ([0, 1, 1], np.full((2, 2), 0.5), ("a", "b"), "y_true"),
        ([0, 2], np.full((2, 2), 0.5), ("a", "b"), "y_true"),
        ([0, 0], np.full((2, 1), 1.0), ("a",), "class_names"),
        ([], np.zeros((0, 2)), ("a", "b"), "y_true"),
    ],
)
def test_compute_metrics_rejects_inconsistent_inputs(y_true, proba, names, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(np.asarray(y_true, dtype=int), proba, names)


# --- properties over a registry of the summary metrics -------------------------------------

SUMMARY_REGISTRY = {
    "accuracy": lambda m: m.accuracy,
    "precision_macro": lambda m: m.precision_macro,
    "recall_macro": lambda m: m.recall_macro,
    "f1_macro": lambda m: m.f1_macro,
    "precision_weighted": lambda m: m.precision_weighted,
    "recall_weighted": lambda m: m.recall_weighted,
    "f1_weighted": lambda m: m.f1_weighted,
    "roc_auc_ovr": lambda m: m.roc_auc_ovr,
}


def _random_case(seed: int, n: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    logits = rng.normal(size=(n, n_classes)) + 2.0 * np.eye(n_classes)[y] * rng.random()
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 40), n_classes=st.integers(2, 4))
def test_summary_metrics_in_unit_interval_and_invariant_under_permutation(seed, n, n_classes):
    y, proba = _random_case(seed, n, n_classes)
    names = tuple(f"c{k}" for k in range(n_classes))
    m = compute_metrics(y, proba, names)
    order = np.random.default_rng(seed + 1).permutation(n)
    shuffled = compute_metrics(y[order], proba[order], names)
    assert set(SUMMARY_REGISTRY) == set(m.summary())
    for name, metric in SUMMARY_REGISTRY.items():
        value = metric(m)
        if value is None:
            assert name == "roc_auc_ovr" and m.roc_auc_reason
            assert metric(shuffled) is None
            continue
        assert 0.0 <= value <= 1.0 and not math.isnan(value), name
        assert metric(shuffled) == pytest.approx(value, abs=1e-12), name
    assert sorted(x.index for x in shuffled.misclassified) == sorted(
        int(np.flatnonzero(order == x.index)[0]) for x in m.misclassified
    )


# --- predict_proba / evaluate_model ---------------------------------------------------------


class _MeanProbe(nn.Module):
    """Logits (mean, -mean) of its input; records what it was given."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # gives the probe a device and a mode
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        mean = x.mean(dim=(1, 2, 3)) * self.scale
        return torch.stack([mean, -mean], dim=1)


def _flat_images(values: list[int], size: int = 4) -> torch.Tensor:
    return torch.stack([torch.full((3, size, size), v, dtype=torch.uint8) for v in values])


def test_predict_proba_normalises_to_minus_one_one_and_applies_softmax():
    probe = _MeanProbe()
    proba = predict_proba(probe, _flat_images([0, 255, 51]))
    seen = torch.cat(probe.seen)
    assert seen[0].unique().tolist() == [-1.0] and seen[1].unique().tolist() == [1.0]
    assert seen[2].unique().item() == pytest.approx(51 / 255 * 2 - 1)
    # black image: logits (-1, 1) -> softmax by hand
    assert proba[0] == pytest.approx([math.exp(-1) / (math.exp(-1) + math.e), 1 / (1 + math.e**-2)])
    assert proba.sum(axis=1) == pytest.approx(np.ones(3))
    assert proba.dtype == np.float64


def test_predict_proba_batch_size_does_not_change_results_and_restores_mode():
    probe = _MeanProbe().train()
    images = _flat_images(list(range(0, 250, 25)))
    whole = predict_proba(probe, images, batch_size=256)
    assert len(probe.seen) == 1
    batched = predict_proba(probe, images, batch_size=3)
    assert len(probe.seen) == 1 + 4
    np.testing.assert_allclose(whole, batched)
    assert probe.training, "predict_proba must hand the model back in its training mode"


def test_predict_proba_rejects_float_images():
    with pytest.raises(ValueError, match="images_uint8"):
        predict_proba(_MeanProbe(), torch.zeros(2, 3, 4, 4))


def test_evaluate_model_matches_compute_metrics_on_predictions():
    images = _flat_images([0, 40, 200, 255])
    labels = torch.tensor([1, 1, 0, 0])  # dark images have a high class-1 logit
    m = evaluate_model(_MeanProbe(), images, labels, ("bright", "dark"))
    assert m.accuracy == 1.0 and m.roc_auc_ovr == 1.0
    assert m == compute_metrics(
        labels.numpy(), predict_proba(_MeanProbe(), images), ("bright", "dark")
    )
