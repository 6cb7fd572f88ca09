"""SHAP explanations of a trained classifier: which pixels pushed each image to its class.

Attributions are of the model's logits (not softmax probabilities), in the normalised input
space the model sees, summed over the colour channels into one S x S map per image. For both
methods they add up (exactly for 'deep', in expectation for 'gradient') to the image's logit
minus the mean logit over the background images, which `Explanation.additivity_gap` measures.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from synth.devices import eval_mode, model_device
from synth.figures import DPI, figure_to_image, text_label, to_hwc
from synth.training.models import to_input

__all__ = ["Explanation", "explain_images", "shap_plot"]

METHODS = ("gradient", "deep")
MAX_BACKGROUND = 32  # SHAP cost grows with the background; 32 images already give stable maps


@dataclass(frozen=True, eq=False)
class Explanation:
    """Per-image SHAP maps for the true and the predicted class, with what they explain.

    Attributes:
        method: 'gradient' (expected gradients) or 'deep' (DeepLIFT-based DeepExplainer).
        seed: Seed of the background draw and of the gradient explainer's sampling.
        class_names: Class names in class-id order.
        labels: True class id per image.
        predictions: Predicted class id per image (argmax of the logits).
        confidences: Softmax probability of the predicted class per image.
        logits: Model outputs, float32 N x n_classes.
        expected_value: Mean logit per class over the background, float32 (n_classes,).
        shap_true: SHAP values for the true class summed over channels, float32 N x S x S.
        shap_pred: The same for the predicted class.
        background_size: How many background images the explainer integrated over.
    """

    method: str
    seed: int
    class_names: tuple[str, ...]
    labels: tuple[int, ...]
    predictions: tuple[int, ...]
    confidences: tuple[float, ...]
    logits: np.ndarray
    expected_value: np.ndarray
    shap_true: np.ndarray
    shap_pred: np.ndarray
    background_size: int

    def additivity_gap(self) -> float:
        """Largest |sum of SHAP values - (logit - expected logit)| over images, both classes."""
        rows = np.arange(len(self.labels))
        gaps = []
        for maps, cls in ((self.shap_true, self.labels), (self.shap_pred, self.predictions)):
            delta = self.logits[rows, list(cls)] - self.expected_value[list(cls)]
            gaps.append(np.abs(maps.sum(axis=(1, 2)) - delta))
        return float(np.max(gaps))


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float32)
    array.flags.writeable = False  # the dataclass is frozen; its arrays should be too
    return array


def _check_inputs(background, images, labels, class_names, method, nsamples) -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    if nsamples <= 0:
        raise ValueError(f"`nsamples` must be > 0, got {nsamples}")
    for name, imgs in (("background_uint8", background), ("images_uint8", images)):
        if imgs.dtype != torch.uint8 or imgs.ndim != 4 or imgs.shape[1] != 3 or len(imgs) == 0:
            raise ValueError(
                f"`{name}` must be a non-empty uint8 tensor N x 3 x S x S, got "
                f"dtype={imgs.dtype}, shape={tuple(imgs.shape)}"
            )
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.shape != (len(images),) or y.min() < 0 or y.max() >= len(class_names):
        raise ValueError(
            f"`labels` must hold {len(images)} class ids in [0, {len(class_names)}), got {y}"
        )
    return y.astype(np.int64)


def _pick_background(background: torch.Tensor, seed: int) -> torch.Tensor:
    if len(background) <= MAX_BACKGROUND:
        return background
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(background), MAX_BACKGROUND, replace=False))
    return background[torch.from_numpy(keep)]


class _Outputs(nn.Module):
    """The model's logits for `classes` only: SHAP computes one pass per output it explains."""

    def __init__(self, model: nn.Module, classes: list[int]) -> None:
        super().__init__()
        self.model = model
        self.classes = classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.classes]


def _shap_values(model, bg, x, classes: list[int], method: str, seed: int, nsamples: int):
    """Raw SHAP values 1 x 3 x S x S x len(classes) of one image for `classes` only.

    Only the true and the predicted class are shown, so the others are never computed: for a
    correctly classified image that is one pass instead of one per class. Global RNG state is
    left as it was.
    """
    import shap  # 5 s to import: only the SHAP step pays it, not every command that imports synth

    selected = _Outputs(model, classes)
    # shap converts tensors through numpy, which warns under NumPy 2; noise, not a problem here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array_wrap__.*", category=DeprecationWarning)
        if method == "deep":
            explainer = shap.DeepExplainer(selected, bg)
            # our own `additivity_gap` reports the error instead of shap's assertion
            return np.asarray(explainer.shap_values(x, check_additivity=False))
        # GradientExplainer seeds the global NumPy RNG with `rseed`; give the caller theirs back
        state = np.random.get_state()
        try:
            explainer = shap.GradientExplainer(selected, bg)
            return np.asarray(explainer.shap_values(x, nsamples=nsamples, rseed=seed))
        finally:
            np.random.set_state(state)


def explain_images(
    model: nn.Module,
    background_uint8: torch.Tensor,
    images_uint8: torch.Tensor,
    labels: Sequence[int] | torch.Tensor | np.ndarray,
    class_names: Sequence[str],
    method: Literal["gradient", "deep"] = "gradient",
    seed: int = 0,
    nsamples: int = 200,
) -> Explanation:
    """SHAP maps of `images_uint8` for their true and predicted classes.

    Args:
        model: Classifier returning logits N x n_classes. 'deep' needs its non-linearities as
            modules (nn.ReLU, nn.MaxPool2d, not in-place, no functional calls) to be exact.
        background_uint8: Training images the attributions are relative to; at most 32 are
            used, drawn with `seed`.
        images_uint8: Images to explain, uint8 N x 3 x S x S.
        labels: True class id of each image.
        class_names: Class names in class-id order.
        method: 'gradient' (shap.GradientExplainer, the default: works with any differentiable
            model) or 'deep' (shap.DeepExplainer: exact additivity, stricter about layers).
        seed: Makes the background draw and the gradient sampling repeatable.
        nsamples: Samples per image for 'gradient'; more means less noisy maps.

    Returns:
        The explanation; the model is left in the train/eval mode it came in.
    """
    # 1. Check inputs
    names = tuple(str(n) for n in class_names)
    y = _check_inputs(background_uint8, images_uint8, labels, names, method, nsamples)
    device = model_device(model)
    bg = to_input(_pick_background(background_uint8, seed).to(device))
    x = to_input(images_uint8.to(device))

    with eval_mode(model):
        # 2. Predictions and the baseline the attributions are relative to
        with torch.no_grad():
            logits = model(x).float().cpu()
            expected = model(bg).float().mean(0).cpu()
        if logits.shape[1] != len(names):
            raise ValueError(f"model has {logits.shape[1]} outputs but {len(names)} class_names")
        proba = torch.softmax(logits, dim=1)
        pred = proba.argmax(dim=1).numpy()

        # 3. SHAP values of the true and the predicted class of each image, summed over channels
        shap_true, shap_pred = [], []
        for i, (true, predicted) in enumerate(zip(y.tolist(), pred.tolist(), strict=True)):
            classes = sorted({true, predicted})
            raw = _shap_values(model, bg, x[i : i + 1], classes, method, seed, nsamples)
            maps = raw[0].sum(axis=0)  # S x S x len(classes)
            shap_true.append(maps[..., classes.index(true)])
            shap_pred.append(maps[..., classes.index(predicted)])
    rows = np.arange(len(y))
    return Explanation(
        method=method,
        seed=seed,
        class_names=names,
        labels=tuple(int(v) for v in y),
        predictions=tuple(int(v) for v in pred),
        confidences=tuple(float(proba[i, pred[i]]) for i in rows),
        logits=_readonly(logits.numpy()),
        expected_value=_readonly(expected.numpy()),
        shap_true=_readonly(np.stack(shap_true)),
        shap_pred=_readonly(np.stack(shap_pred)),
        background_size=len(bg),
    )


def shap_plot(
    explanation: Explanation, images_uint8: torch.Tensor, class_names: Sequence[str]
) -> Image.Image:
    """Each explained image beside its SHAP maps for the true and the predicted class.

    Red pixels raised the class's logit, blue ones lowered it; one symmetric colour scale is
    shared by all maps so their strengths compare.
    """
    images = to_hwc(images_uint8)
    n = len(explanation.labels)
    if len(images) != n:
        raise ValueError(f"`images_uint8` has {len(images)} images, explanation has {n}")
    both = np.concatenate([explanation.shap_true, explanation.shap_pred])
    # the 99.9th percentile, as shap.image_plot does, so one hot pixel does not wash out the rest
    vmax = float(np.nanpercentile(np.abs(both), 99.9)) or 1e-8
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    fig = Figure(figsize=(4.2, 1.3 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        true, pred = explanation.labels[i], explanation.predictions[i]
        gray = images[i].mean(axis=2)
        panels = (
            (None, f"true: {text_label(class_names[true])}"),
            (explanation.shap_true[i], f"SHAP {text_label(class_names[true])}"),
            (explanation.shap_pred[i], f"SHAP {text_label(class_names[pred])} (pred)"),
        )
        for ax, (values, title) in zip(axes[i], panels, strict=True):
            ax.set_axis_off()
            ax.set_title(title, fontsize=7)
            if values is None:
                ax.imshow(images[i], interpolation="nearest")
                continue
            ax.imshow(gray, cmap="gray", alpha=0.3, interpolation="nearest")
            mappable = ax.imshow(values, cmap="bwr", norm=norm, alpha=0.8, interpolation="nearest")
    bar = fig.colorbar(
        mappable, ax=axes.ravel().tolist(), orientation="horizontal", shrink=0.6, aspect=30
    )
    bar.set_ticks([-vmax, 0.0, vmax], labels=[f"{-vmax:.2g}", "0", f"{vmax:.2g}"])
    bar.set_label("SHAP value (logit units)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    return figure_to_image(fig, dpi=DPI)
