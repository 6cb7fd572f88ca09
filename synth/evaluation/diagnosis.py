"""Why synthetic data helped or not: domain gap, leakage audit and cost, from the real-only model.

`diagnose_study` takes the baseline's (real-only) checkpoint, the real-train, real-test and
synthetic tensor sets and the evaluation records, and measures:

- the domain gap per class: Fréchet distance and KID between real-train and synthetic images,
  beside real-train vs real-test (the yardstick), in the classifier's feature space and, when a
  feature model is given, in its space too. FD is biased upward at small n (about dim / n), so
  every comparison draws the same number of images per set (the class's smallest count);
- the leakage audit: each synthetic image's nearest image of every real test set, by relative
  feature distance and perceptual hash, calibrated by real-train vs the same test set (different
  real photos of the same classes, so every pair it flags is a false alarm);
- the cost: generation seconds per image and per accuracy point gained over the baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from synth.config import RecipeConfig
from synth.data.preprocess import TensorData, TensorSet, load_tensor_set
from synth.errors import InputError
from synth.evaluation.domain_gap import (
    classifier_features,
    frechet_distance,
    kernel_inception_distance,
)
from synth.evaluation.feature_model import (
    check_feature_model,
    load_feature_model,
    model_features,
)
from synth.evaluation.generation_cost import (
    CostPerPoint,
    GenerationCost,
    cost_per_point,
    generation_cost,
)
from synth.evaluation.leakage import Neighbour, SuspectPair, audit_leakage
from synth.evaluation.scoring import EvalRecord
from synth.training.trainer import Checkpoint, load_checkpoint

__all__ = [
    "ClassDistance",
    "Diagnosis",
    "FeatureSpaceGap",
    "LeakageCheck",
    "diagnose_study",
    "equal_count_gap",
]

DRAWS = 10  # equal-count subsample draws per class; their spread is reported beside the mean
SHOWN_CLOSEST = 4  # nearest pairs kept for the report when no pair is suspect


@dataclass(frozen=True)
class ClassDistance:
    """One class's distances at `n` images per set: mean (and sd) over `draws` subsamples."""

    name: str
    n: int
    fd_synthetic: float | None  # real-train vs synthetic
    fd_synthetic_sd: float | None
    fd_yardstick: float | None  # real-train vs real-test
    fd_yardstick_sd: float | None
    kid_synthetic: float | None
    kid_yardstick: float | None
    reason: str | None = None  # why the distances are None

    @property
    def ratio(self) -> float | None:
        """FD to synthetic over FD to real-test: 1 means 'as close as new real photos'."""
        if self.fd_synthetic is None or not self.fd_yardstick:
            return None
        return self.fd_synthetic / self.fd_yardstick


@dataclass(frozen=True)
class FeatureSpaceGap:
    """The per-class domain gap in one feature space."""

    space: str  # 'classifier', or the feature model's name
    description: str
    dim: int
    draws: int
    classes: tuple[ClassDistance, ...]


@dataclass(frozen=True)
class LeakageCheck:
    """Synthetic images vs one real test set, with real-train vs that set as calibration."""

    test_set: str
    n_synthetic: int
    n_test: int
    distance_threshold: float
    hash_threshold: int
    suspects: tuple[SuspectPair, ...]
    n_suspect_images: int
    closest: tuple[Neighbour, ...]  # the synthetic images nearest any test image in features
    synthetic_distances: tuple[float, ...]  # relative nearest-neighbour distance of each
    synthetic_hash_min: tuple[int, ...]
    train_distances: tuple[float, ...]  # the same for each real-train image
    train_hash_min: tuple[int, ...]
    train_flagged: int  # real-train images the thresholds would flag: false alarms

    def summary(self) -> dict:
        """Counts and quantiles for metrics.json (the raw distances stay in the report's plot)."""
        return {
            "test_set": self.test_set,
            "synthetic_images": self.n_synthetic,
            "test_images": self.n_test,
            "distance_threshold": self.distance_threshold,
            "hash_threshold": self.hash_threshold,
            "n_suspect_images": self.n_suspect_images,
            "suspects": [asdict(p) for p in self.suspects],
            "synthetic_nearest_distance": _quantiles(self.synthetic_distances),
            "synthetic_nearest_hash_bits_min": min(self.synthetic_hash_min, default=None),
            "calibration_real_train_nearest_distance": _quantiles(self.train_distances),
            "calibration_real_train_nearest_hash_bits_min": min(self.train_hash_min, default=None),
            "calibration_real_train_images": len(self.train_distances),
            "calibration_real_train_flagged": self.train_flagged,
        }


@dataclass(frozen=True)
class Diagnosis:
    """Domain gap, leakage audit and cost of one study, measured with its real-only model."""

    baseline: str
    seed: int
    checkpoint: str
    gaps: tuple[FeatureSpaceGap, ...]
    leakage: tuple[LeakageCheck, ...]  # the main real-test set first
    cost: GenerationCost
    gains: tuple[CostPerPoint, ...]

    @property
    def n_suspect_images(self) -> int:
        """Synthetic images suspected of copying a main-test-set image (for the verdict)."""
        return self.leakage[0].n_suspect_images if self.leakage else 0

    def suspects_in(self, test_set: str) -> int:
        """Suspect synthetic images for `test_set` (0 for a set that was not audited)."""
        return next((c.n_suspect_images for c in self.leakage if c.test_set == test_set), 0)

    def to_dict(self) -> dict:
        """The `diagnosis` entry of metrics.json."""
        gaps = [
            {
                **{k: getattr(g, k) for k in ("space", "description", "dim", "draws")},
                "classes": [{**asdict(c), "ratio": c.ratio} for c in g.classes],
            }
            for g in self.gaps
        ]
        plain = ("baseline", "seed", "checkpoint", "n_suspect_images")
        return {
            **{k: getattr(self, k) for k in plain},
            "domain_gap": gaps,
            "leakage": [c.summary() for c in self.leakage],
            "cost": {**asdict(self.cost), "per_point": [asdict(g) for g in self.gains]},
        }


def _quantiles(values: Sequence[float]) -> dict | None:
    if not values:
        return None
    q = np.quantile(np.asarray(values, dtype=np.float64), [0.0, 0.01, 0.5])
    return {"min": float(q[0]), "p01": float(q[1]), "median": float(q[2])}


def _draw_distances(train, syn, test, n: int, rng: np.random.Generator):
    """FD and KID of one equal-count draw: (fd_syn, fd_yard, kid_syn, kid_yard)."""
    a = train[rng.choice(len(train), n, replace=False)]
    s = syn[rng.choice(len(syn), n, replace=False)]
    t = test[rng.choice(len(test), n, replace=False)]
    seed = rng.integers(2**32)
    kid_s = kernel_inception_distance(a, s, subsets=1, subset_size=n, seed=seed).mean
    kid_t = kernel_inception_distance(a, t, subsets=1, subset_size=n, seed=seed).mean
    return frechet_distance(a, s), frechet_distance(a, t), kid_s, kid_t


def equal_count_gap(
    train_feats, train_labels, syn_feats, syn_labels, test_feats, test_labels,
    class_names: Sequence[str], *, draws: int = DRAWS, seed: int = 0,
) -> tuple[ClassDistance, ...]:  # fmt: skip
    """Per class, FD and KID of real-train vs synthetic and of real-train vs real-test.

    Each of `draws` draws takes n = the class's smallest count of the three sets from each set
    (without replacement), so both distances carry the same small-n bias; the train draw is
    shared by the two distances of a draw, which pairs them.

    Returns:
        One entry per class; None with a reason when a set has fewer than 2 images of it.
    """
    if draws < 1:
        raise ValueError(f"`draws` must be >= 1, got {draws}")
    pairs = ((train_feats, train_labels), (syn_feats, syn_labels), (test_feats, test_labels))
    sets = [(np.asarray(f, np.float64), np.asarray(y)) for f, y in pairs]
    out = []
    for c, name in enumerate(class_names):
        train, syn, test = (f[y == c] for f, y in sets)
        n = min(len(train), len(syn), len(test))
        if n < 2:
            counts = f"real-train {len(train)}, synthetic {len(syn)}, real-test {len(test)}"
            reason = f"needs >= 2 images in each set, got {counts}"
            out.append(ClassDistance(str(name), n, *[None] * 6, reason=reason))
            continue
        rng = np.random.default_rng([seed, c])
        rows = np.array([_draw_distances(train, syn, test, n, rng) for _ in range(draws)])
        mean = [float(v) for v in rows.mean(axis=0)]
        sd = [float(v) for v in rows.std(axis=0, ddof=1)] if draws > 1 else [0.0] * 4
        out.append(ClassDistance(str(name), n, mean[0], sd[0], mean[1], sd[1], mean[2], mean[3]))
    return tuple(out)


def _uses_synthetic(recipe: RecipeConfig) -> bool:
    """Whether a recipe trains on all real images plus synthetic ones, or synthetic ones alone.

    Only those are charged per point against the real-only baseline; `shots` recipes use a
    fraction of the real images, so their synthetic images' worth is the exchange rate.
    """
    if recipe.kind == "mix":
        return recipe.synthetic_fraction > 0
    if recipe.kind == "real-plus-synthetic":
        return recipe.synthetic_per_real > 0
    return recipe.kind in ("synthetic", "pretrain-finetune")


def _leakage(name, syn: TensorData, syn_feats, test: TensorData, test_feats, train, train_feats):
    audit = audit_leakage(syn.images, syn_feats, test.images, test_feats)
    calibration = audit_leakage(train.images, train_feats, test.images, test_feats)
    closest = sorted(audit.neighbours, key=lambda nb: nb.distance)[:SHOWN_CLOSEST]
    return LeakageCheck(
        test_set=name,
        n_synthetic=len(syn.images),
        n_test=len(test.images),
        distance_threshold=audit.distance_threshold,
        hash_threshold=audit.hash_threshold,
        suspects=audit.suspects,
        n_suspect_images=audit.n_suspect_images,
        closest=tuple(closest),
        synthetic_distances=tuple(nb.distance for nb in audit.neighbours),
        synthetic_hash_min=tuple(nb.hash_min for nb in audit.neighbours),
        train_distances=tuple(nb.distance for nb in calibration.neighbours),
        train_hash_min=tuple(nb.hash_min for nb in calibration.neighbours),
        train_flagged=calibration.n_suspect_images,
    )


def diagnose_study(
    checkpoint: Checkpoint,
    real_train: TensorSet,
    test_sets: dict[str, TensorSet],
    synthetic: TensorSet,
    synthetic_root: str,
    records: Sequence[EvalRecord],
    recipes: Sequence[RecipeConfig],
    *,
    baseline: str = "real",
    feature_model: str | None = None,
    device: str = "auto",
    seed: int = 0,
) -> Diagnosis:
    """Domain gap, leakage audit and generation cost of a study (see the module docstring).

    Args:
        checkpoint: The baseline recipe's real-only model (its first seed).
        real_train: The real training images it was trained on.
        test_sets: Real test sets by name, the main one first (the domain gap's yardstick).
        synthetic: The synthetic images.
        synthetic_root: The synthetic dataset folder (its manifest times the generation).
        records: Every evaluation, for the accuracy gained over `baseline`.
        recipes: The study's recipes; those training on synthetic images get a cost per point.
        baseline: The real-only recipe's name.
        feature_model: A CLIP / DINOv2 folder or hub id for a second feature space, or None.
        device: Where the feature model runs ('auto', 'cuda', 'cpu').
        seed: Seed of the subsample draws.
    """
    # 1. Check inputs, before loading any model
    if not test_sets:
        raise InputError("`test_sets` is empty: the diagnosis needs a real test set")
    check_feature_model(feature_model)
    model, info = load_checkpoint(checkpoint.path)
    data = {name: load_tensor_set(t.path, digest=t.digest) for name, t in test_sets.items()}
    train = load_tensor_set(real_train.path, digest=real_train.digest)
    syn = load_tensor_set(synthetic.path, digest=synthetic.digest)
    main = next(iter(test_sets))
    # 2. Features of the real-only classifier (always available)
    feats = {name: classifier_features(model, d.images) for name, d in data.items()}
    train_f = classifier_features(model, train.images)
    syn_f = classifier_features(model, syn.images)
    labels = (train.labels.numpy(), syn.labels.numpy(), data[main].labels.numpy())
    classes = info.class_names

    def gap(space, description, tr, sy, te):
        per_class = equal_count_gap(tr, labels[0], sy, labels[1], te, labels[2], classes, seed=seed)
        return FeatureSpaceGap(space, description, tr.shape[1], DRAWS, per_class)

    # 3. Domain gap in the classifier's space, then in the feature model's
    what = f"real-only classifier ({baseline}, seed {info.seed}), input of its last layer"
    gaps = [gap("classifier", what, train_f, syn_f, feats[main])]
    if feature_model is not None:
        loaded = load_feature_model(feature_model, device=device)
        f = [model_features(loaded, d.images) for d in (train, syn, data[main])]
        gaps.append(gap(feature_model, f"{loaded.kind} pooled embedding", *f))
    # 4. Leakage audit against every real test set (a single image has no spacing to scale by)
    leakage = tuple(
        _leakage(name, syn, syn_f, d, feats[name], train, train_f)
        for name, d in data.items()
        if len(d.images) >= 2
    )
    # 5. Cost
    cost = generation_cost(synthetic_root)
    accuracy = {(r.recipe, r.seed, r.test_set): r.metrics.accuracy for r in records}
    paid = [r.name for r in recipes if _uses_synthetic(r) and r.name != baseline]
    gains = cost_per_point(cost, accuracy, paid, baseline)
    return Diagnosis(baseline, info.seed, checkpoint.path, tuple(gaps), leakage, cost, gains)
