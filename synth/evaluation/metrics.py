"""Evaluation on real held-out images: probabilities, headline metrics, curves, mistakes.

Every number comes from scikit-learn (``zero_division=0``), so the values match what a reader
gets from sklearn on the same predictions. Results are frozen dataclasses of plain tuples, so they
serialise to JSON and compare by value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from torch import nn

from synth.devices import eval_mode, model_device
from synth.training.models import to_input  # one normalisation for training and evaluation

__all__ = [
    "METRICS",
    "ClassReport",
    "EvalMetrics",
    "Misclassified",
    "PrCurve",
    "RocCurve",
    "compute_metrics",
    "evaluate_model",
    "predict_proba",
]

# The one list of headline metrics, in the order tables show them (higher is better for all).
METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc_ovr",
)


@dataclass(frozen=True)
class ClassReport:
    """Per-class precision, recall and F1 (one-vs-rest), and the class's true count."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class RocCurve:
    """One-vs-rest ROC curve of one class; empty points and auc None when it is undefined."""

    name: str
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    auc: float | None


@dataclass(frozen=True)
class PrCurve:
    """One-vs-rest precision-recall curve of one class; AP None when the class is absent."""

    name: str
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    average_precision: float | None


@dataclass(frozen=True)
class Misclassified:
    """One wrong prediction: sample index, true and predicted class ids, predicted probability."""

    index: int
    true: int
    predicted: int
    confidence: float


@dataclass(frozen=True)
class EvalMetrics:
    """Everything measured on one evaluation set; `confusion` rows are true classes."""

    class_names: tuple[str, ...]
    n_samples: int
    accuracy: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    precision_weighted: float
    recall_weighted: float
    f1_weighted: float
    roc_auc_ovr: float | None
    roc_auc_reason: str | None
    per_class: tuple[ClassReport, ...]
    confusion: tuple[tuple[int, ...], ...]
    roc_curves: tuple[RocCurve, ...]
    pr_curves: tuple[PrCurve, ...]
    misclassified: tuple[Misclassified, ...]

    def summary(self) -> dict[str, float | None]:
        """Headline numbers for tables and JSON; `roc_auc_ovr` is None when undefined."""
        return {key: getattr(self, key) for key in METRICS}


def _check_images(images_uint8: torch.Tensor) -> torch.Tensor:
    images = torch.as_tensor(images_uint8)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            "`images_uint8` must be a uint8 tensor N x 3 x S x S, got "
            f"dtype={images.dtype}, shape={tuple(images.shape)}"
        )
    return images


def predict_proba(
    model: nn.Module, images_uint8: torch.Tensor, batch_size: int = 256
) -> np.ndarray:
    """Class probabilities (softmax of the model's logits), N x n_classes float64.

    Args:
        model: Any classifier returning logits N x n_classes.
        images_uint8: uint8 tensor N x 3 x S x S (as stored in the tensor cache).
        batch_size: Images per forward pass; bounds memory, not results.

    Returns:
        Probabilities, rows summing to 1.
    """
    images = _check_images(images_uint8)
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be > 0, got {batch_size}")
    device = model_device(model)
    chunks = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = to_input(images[start : start + batch_size].to(device))
            chunks.append(torch.softmax(model(x).float(), dim=1).cpu())
    if not chunks:
        raise ValueError("`images_uint8` is empty")
    # float64 so sklearn's "probabilities sum to 1" check never trips on float32 rounding
    return torch.cat(chunks).double().numpy()


def _check_inputs(y_true, proba, class_names) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    n_classes = len(class_names)
    if n_classes < 2:
        raise ValueError(f"`class_names` needs at least 2 classes, got {list(class_names)}")
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"`proba` must be N x {n_classes}, got shape {p.shape}")
    if y.ndim != 1 or len(y) != len(p) or len(y) == 0:
        raise ValueError(f"`y_true` must be 1-D with {len(p)} labels (N > 0), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"`y_true` must hold class ids in [0, {n_classes}), got {np.unique(y)}")
    return y.astype(np.int64), p


def _roc_auc(y: np.ndarray, p: np.ndarray, names: Sequence[str]) -> tuple[float | None, str | None]:
    absent = [names[k] for k in range(len(names)) if not (y == k).any()]
    if absent:
        return None, f"class(es) absent from y_true, one-vs-rest ROC-AUC undefined: {absent}"
    if len(names) == 2:
        return float(roc_auc_score(y, p[:, 1])), None
    return float(
        roc_auc_score(y, p, multi_class="ovr", average="macro", labels=range(len(names)))
    ), None


def _curves(y: np.ndarray, p: np.ndarray, names: Sequence[str]):
    rocs, prs = [], []
    for k, name in enumerate(names):
        positive = y == k
        score = p[:, k]
        if positive.all() or not positive.any():
            # a one-sided ROC curve is undefined (sklearn warns and returns NaNs)
            rocs.append(RocCurve(name, (), (), None))
        else:
            fpr, tpr, _ = roc_curve(positive, score)
            auc = float(roc_auc_score(positive, score))
            rocs.append(RocCurve(name, tuple(fpr.tolist()), tuple(tpr.tolist()), auc))
        if not positive.any():
            prs.append(PrCurve(name, (), (), None))
        else:
            prec, rec, _ = precision_recall_curve(positive, score)
            ap = float(average_precision_score(positive, score))
            prs.append(PrCurve(name, tuple(prec.tolist()), tuple(rec.tolist()), ap))
    return tuple(rocs), tuple(prs)


def _averaged(y: np.ndarray, pred: np.ndarray, labels: list[int], average: str) -> tuple:
    prec, rec, f1, _ = precision_recall_fscore_support(
        y, pred, labels=labels, average=average, zero_division=0
    )
    return float(prec), float(rec), float(f1)


def compute_metrics(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> EvalMetrics:
    """All evaluation metrics of predicted probabilities against true labels.

    Args:
        y_true: True class ids, length N, each in [0, n_classes).
        proba: Predicted probabilities N x n_classes; the prediction is the row's argmax.
        class_names: Names of the classes, in class-id order.

    Returns:
        The metrics; ROC-AUC is None (with `roc_auc_reason`) when a class is absent from y_true.

    Raises:
        ValueError: If shapes, labels or class names do not fit together.
    """
    # 1. Check inputs
    names = tuple(str(n) for n in class_names)
    y, p = _check_inputs(y_true, proba, names)
    labels = list(range(len(names)))
    pred = p.argmax(axis=1)

    # 2. Threshold metrics: averaged and per class
    macro = _averaged(y, pred, labels, "macro")
    weighted = _averaged(y, pred, labels, "weighted")
    prec, rec, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    per_class = tuple(
        ClassReport(names[k], float(prec[k]), float(rec[k]), float(f1[k]), int(support[k]))
        for k in labels
    )
    confusion = confusion_matrix(y, pred, labels=labels)

    # 3. Ranking metrics and curves
    auc, reason = _roc_auc(y, p, names)
    rocs, prs = _curves(y, p, names)

    # 4. Mistakes, in sample order
    wrong = np.flatnonzero(pred != y)
    misclassified = tuple(
        Misclassified(int(i), int(y[i]), int(pred[i]), float(p[i, pred[i]])) for i in wrong
    )
    return EvalMetrics(
        class_names=names,
        n_samples=len(y),
        accuracy=float(accuracy_score(y, pred)),
        precision_macro=macro[0],
        recall_macro=macro[1],
        f1_macro=macro[2],
        precision_weighted=weighted[0],
        recall_weighted=weighted[1],
        f1_weighted=weighted[2],
        roc_auc_ovr=auc,
        roc_auc_reason=reason,
        per_class=per_class,
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
        roc_curves=rocs,
        pr_curves=prs,
        misclassified=misclassified,
    )


def evaluate_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor | np.ndarray,
    class_names: Sequence[str],
) -> EvalMetrics:
    """`compute_metrics` of `model` on uint8 `images` N x 3 x S x S with true `labels`."""
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return compute_metrics(y, predict_proba(model, images), class_names)
