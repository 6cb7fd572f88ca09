"""Generation: plan the images of a config, load the model, generate batches, keep the dataset
consistent.
"""

from __future__ import annotations

from synth.generation.batch import (
    BatchResult,
    generate_batch,
    model_info,
    pipeline_for,
)
from synth.generation.dataset import (
    SPLIT,
    DatasetRef,
    DatasetState,
    make_row,
    manifest_path,
    plan_generation,
    prepare_output,
    read_verified_rows,
    scan_dataset,
    verify_dataset,
    write_summary,
)
from synth.generation.manifest import (
    ManifestRow,
    append_rows,
    dataset_digest,
    read_manifest,
    repair_manifest,
    sample_images,
)
from synth.generation.model_loader import (
    LoadedPipeline,
    ModelInfo,
    describe_model,
    folder_digest,
    load_pipeline,
)
from synth.generation.plan import (
    WHOLE,
    BatchSpec,
    GenerationPlan,
    PlannedImage,
    Shard,
    plan_batches,
    plan_images,
    planned_file_names,
    split_batches,
)
from synth.generation.provenance import PROVENANCE_FIELDS, changed_fields
from synth.generation.tiny_model import (
    build_sd15_random_pipeline,
    build_tiny_pipeline,
    generator_note,
    is_tiny_model,
    save_tiny_pipeline,
)

__all__ = [
    "BatchResult",
    "BatchSpec",
    "DatasetRef",
    "DatasetState",
    "GenerationPlan",
    "LoadedPipeline",
    "ManifestRow",
    "ModelInfo",
    "PROVENANCE_FIELDS",
    "PlannedImage",
    "SPLIT",
    "Shard",
    "WHOLE",
    "append_rows",
    "build_sd15_random_pipeline",
    "build_tiny_pipeline",
    "changed_fields",
    "dataset_digest",
    "describe_model",
    "folder_digest",
    "generate_batch",
    "generator_note",
    "is_tiny_model",
    "load_pipeline",
    "make_row",
    "manifest_path",
    "model_info",
    "pipeline_for",
    "plan_batches",
    "plan_generation",
    "plan_images",
    "planned_file_names",
    "prepare_output",
    "read_manifest",
    "read_verified_rows",
    "repair_manifest",
    "sample_images",
    "save_tiny_pipeline",
    "scan_dataset",
    "split_batches",
    "verify_dataset",
    "write_summary",
]
