"""Real data: safe import of photos, preprocessing, and cached tensor sets of real and synthetic
images.
"""

from __future__ import annotations

from synth.data.preprocess import (
    PreprocessItem,
    TensorData,
    TensorSet,
    build_tensor_set,
    crop_random_margin,
    image_rng,
    letterbox,
    load_tensor_set,
    real_items,
)
from synth.data.real_import import (
    BadImageError,
    Quarantined,
    RealDataset,
    RealImage,
    TrainTestDuplicate,
    extra_test_set_names,
    import_real_dataset,
    load_rgb,
    write_import_report,
)
from synth.data.tensor_cache import (
    preprocess_real,
    preprocess_synthetic,
    synthetic_items,
)

__all__ = [
    "BadImageError",
    "PreprocessItem",
    "Quarantined",
    "RealDataset",
    "RealImage",
    "TensorData",
    "TensorSet",
    "TrainTestDuplicate",
    "build_tensor_set",
    "crop_random_margin",
    "extra_test_set_names",
    "image_rng",
    "import_real_dataset",
    "letterbox",
    "load_rgb",
    "load_tensor_set",
    "preprocess_real",
    "preprocess_synthetic",
    "real_items",
    "synthetic_items",
    "write_import_report",
]
