"""Configuration models: frozen pydantic models with a default, a constraint and a reason per field.

Configs live in TOML (or YAML) files that only override defaults; `load_config` reads them and
turns pydantic's errors into a `ConfigError` that names every bad field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from synth.errors import ConfigError
from synth.naming import (
    DEFAULT_TEMPLATE,
    extra_test_set_names,
    template_fields,
    validate_class_names,
)

if TYPE_CHECKING:
    from synth.generation.contexts import PlannedPrompt


def _multiple_of_8(value: int) -> int:
    if value % 8:
        raise ValueError(f"must be a multiple of 8 (the VAE downsamples by 8), got {value}")
    return value


# Value ranges several fields share, declared once; pydantic merges each with the field's Field()
Seed = Annotated[int, Field(ge=0, lt=2**63)]
Share = Annotated[float, Field(gt=0.0, le=1.0)]  # a share or rate in (0, 1]
OpenShare = Annotated[float, Field(gt=0.0, lt=1.0)]  # a share strictly between 0 and 1
# A side of an image a diffusers pipeline makes or is fitted on, in pixels
PixelSide = Annotated[int, Field(ge=8, le=4096), AfterValidator(_multiple_of_8)]
Device = Literal["auto", "cuda", "cpu"]  # 'auto' takes CUDA when present (synth/devices.py)

__all__ = [
    "ClassSpec",
    "ConfigError",
    "ConfigModel",
    "ExperimentConfig",
    "GenerationConfig",
    "PreprocessConfig",
    "QualityConfig",
    "RecipeConfig",
    "TrainConfig",
    "load_config",
    "parse_config",
]

M = TypeVar("M", bound=BaseModel)

SD15_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"

Scheduler = Literal["default", "ddim", "pndm", "euler", "euler-ancestral", "dpm-solver", "unipc"]


_BLANK_ALLOWED = {"negative_prompt"}  # the one text field where '' means something ("none")


# Every config model: immutable once made, unknown keys refused, no NaN or infinity
_STRICT_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ConfigModel(BaseModel):
    """Base of the config models: `_STRICT_FROZEN`, no boolean where a number belongs, no blank
    text (but in `_BLANK_ALLOWED`). QualityConfig keeps pydantic's own strict checks instead."""

    model_config = _STRICT_FROZEN

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools_for_numbers_no_blank_strings(cls, value: Any, info) -> Any:
        annotation = str(cls.model_fields[info.field_name].annotation)
        if type(value) is bool and "bool" not in annotation:
            raise ValueError(f"expected a number or text, got the boolean {value}")
        if isinstance(value, str) and not value.strip() and info.field_name not in _BLANK_ALLOWED:
            raise ValueError("must not be blank")
        return value


class ClassSpec(ConfigModel):
    """One class to generate: its label and, optionally, its own prompts."""

    name: str = Field(description="Label as users write it; validated before it names a folder.")
    prompts: tuple[str, ...] = Field(
        default=(),
        description="Full prompts used in turn (image i gets prompts[i % len]); "
        "empty means the config's prompt_template.",
    )

    @field_validator("prompts")
    @classmethod
    def _prompts_not_blank(cls, prompts: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in prompts):
            raise ValueError("prompts must not contain blank strings")
        return prompts


class GenerationConfig(ConfigModel):
    """Everything that decides which images a synthetic dataset holds, and how they look."""

    classes: tuple[ClassSpec, ...] = Field(
        default=(ClassSpec(name="apple"), ClassSpec(name="banana"), ClassSpec(name="orange")),
        min_length=1,
        description="Classes to generate; a bare string is a class with no prompts of its own.",
    )
    prompt_template: str = Field(
        default=DEFAULT_TEMPLATE,
        description="Prompt for classes without prompts; '{name}' is the class name "
        "(the study used the bare name: '{name}'), '{a_name}' the name after its article "
        "('an orange', 'a banana'); '{context}' places the image's context.",
    )
    contexts: tuple[str, ...] = Field(
        default=(),
        description="Scenes, backgrounds or styles combined with every class in turn, planned "
        "per image (synth/generation/contexts.py); appended to the prompt unless it says "
        "where with '{context}'.",
    )
    negative_prompt: str = Field(default="", description="Negative prompt ('' for none).")
    images_per_class: int = Field(default=10, gt=0, le=1_000_000, description="Images per class.")
    seed: Seed = Field(default=0, description="Dataset seed; image seeds derive from it.")
    model: str = Field(
        default=SD15_MODEL_ID,
        min_length=1,
        description="Hugging Face hub id or local directory of a diffusers text-to-image model.",
    )
    revision: str | None = Field(default=None, description="Hub revision (branch, tag, commit).")
    scheduler: Scheduler = Field(default="default", description="'default' keeps the model's own.")
    steps: int = Field(default=30, gt=0, le=1000, description="Denoising steps per image.")
    guidance_scale: float = Field(
        default=7.5, ge=0.0, le=50.0, description="Classifier-free guidance; <= 1 disables CFG."
    )
    width: PixelSide = Field(default=512, description="Image width in pixels (x8).")
    height: PixelSide = Field(default=512, description="Image height in pixels (x8).")
    batch_size: int = Field(default=4, gt=0, le=256, description="Images per pipeline call/task.")
    device: Device = Field(default="auto", description="'auto' takes CUDA when present.")
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = Field(
        default="auto", description="'auto' is fp16 on CUDA and fp32 on CPU."
    )
    lora: str | None = Field(
        default=None,
        description="Local folder of a LoRA adapter saved with diffusers' save_lora_weights "
        "(e.g. by `datasynth personalize`), applied to the model; its digest is in every row.",
    )
    lora_scale: float = Field(
        default=1.0, ge=0.0, le=4.0, description="LoRA strength: 0 is the base model, 1 as trained."
    )
    strategy: Literal["text2img", "img2img"] = Field(
        default="text2img",
        description="'text2img': images from prompts alone; 'img2img': `variations_per_image` "
        "variations of each real train photo (synth/generation/img2img.py).",
    )
    source_images: str | None = Field(
        default=None,
        description="img2img: labelled ImageFolder of real photos whose train split guides "
        "generation (split like an experiment's real_data); an experiment uses its real_data.",
    )
    source_test_fraction: OpenShare = Field(
        default=0.2,
        description="img2img: held-out share of source_images when it has no test/ folder "
        "(an experiment uses its test_fraction).",
    )
    source_split_seed: Seed = Field(
        default=0, description="img2img: seed of that split (an experiment uses its split_seed)."
    )
    variations_per_image: int = Field(
        default=1, gt=0, le=1000, description="img2img: images made from each train photo (k)."
    )
    strength: Share = Field(
        default=0.75,
        description="img2img: share of the denoising redone from the photo: near 0 keeps it, "
        "1 keeps only its rough colours.",
    )

    @model_validator(mode="after")
    def _strategy_fields_agree(self) -> GenerationConfig:
        # Compared with the defaults, not with model_fields_set: dataset.json stores every
        # field, and reading it back must not look like the user set them.
        defaults = GenerationConfig.model_fields
        if self.strategy == "img2img":
            if self.images_per_class != defaults["images_per_class"].default:
                raise ValueError(
                    "`images_per_class` does not apply to strategy 'img2img': each class gets "
                    "`variations_per_image` images per train photo; remove it"
                )
            if self.steps * self.strength < 1:
                raise ValueError(
                    f"img2img runs int(`steps` x `strength`) denoising steps, and {self.steps} x "
                    f"{self.strength} is below 1: raise `steps` or `strength`"
                )
            return self
        img2img_only = ("source_images", "variations_per_image", "strength")
        set_ = [f for f in img2img_only if getattr(self, f) != defaults[f].default]
        if set_:
            raise ValueError(
                f"{', '.join(f'`{f}`' for f in set_)} apply only to strategy 'img2img': set "
                '`strategy = "img2img"` or remove them'
            )
        return self

    @field_validator("contexts")
    @classmethod
    def _contexts_not_blank(cls, contexts: tuple[str, ...]) -> tuple[str, ...]:
        if any(not c.strip() for c in contexts):
            raise ValueError("contexts must not contain blank strings")
        return contexts

    @field_validator("classes", mode="before")
    @classmethod
    def _strings_are_classes(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple({"name": v} if isinstance(v, str) else v for v in value)
        return value

    @field_validator("classes")
    @classmethod
    def _class_names_are_safe(cls, classes: tuple[ClassSpec, ...]) -> tuple[ClassSpec, ...]:
        validate_class_names([c.name for c in classes])
        return classes

    @field_validator("prompt_template")
    @classmethod
    def _template_formats(cls, template: str) -> str:
        template_fields(template, "prompt_template")  # only {name}, {a_name}, {context}, plain
        if not template.strip():
            raise ValueError("prompt_template must not be blank")
        return template

    def planned_prompt(self, spec: ClassSpec, index: int) -> PlannedPrompt:
        """The `PlannedPrompt` (prompt and context) of image `index` of class `spec`."""
        from synth.generation.contexts import plan_prompt  # loads torch: only when asked

        return plan_prompt(
            spec.name,
            index,
            template=self.prompt_template,
            prompts=spec.prompts,
            contexts=self.contexts,
        )

    def prompt_for(self, spec: ClassSpec, index: int) -> str:
        """The prompt of image `index` of class `spec`, its context included."""
        return self.planned_prompt(spec, index).prompt


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = repr(got) if not isinstance(got, dict) else "{...}"
        lines.append(f"  - `{where}`: {err['msg']} (got {shown[:80]})")
    return "\n".join(lines)


def parse_config(model: type[M], data: dict[str, Any], source: str = "") -> M:
    """Validate `data` as `model`, raising `ConfigError` that names every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source or model.__name__)) from None


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not valid {path.suffix[1:]}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a table of settings")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for depth, key in enumerate(parents):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            where = ".".join(parents[: depth + 1])
            raise ConfigError(f"override `{dotted}`: `{where}` is a value, not a table")
    node[leaf] = value


def load_config(
    path: str | Path, model: type[M] = GenerationConfig, overrides: dict[str, Any] | None = None
) -> M:
    """Read a TOML/YAML config, apply dotted `overrides` ({'generation.seed': 3}), validate."""
    path = Path(path)
    data = _read_file(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    return parse_config(model, data, source=str(path))


class PreprocessConfig(ConfigModel):
    """How real and synthetic images are made to look alike (the study's pipeline)."""

    size: int = Field(default=64, ge=8, le=1024, description="Output side S in pixels (S x S).")
    padding: Literal["black", "white", "mean", "noise"] = Field(
        default="black", description="Letterbox fill: the study used black."
    )
    synthetic_margin: tuple[float, float] = Field(
        default=(0.0, 0.15),
        description="Range of the fraction of each side cut from square synthetic images, "
        "so they resemble letterboxed photos; (0, 0) disables it.",
    )
    seed: int = Field(
        default=0,
        ge=0,
        description="Seed of the per-image random margins/noise (the real train/test split has "
        "its own `split_seed`).",
    )

    @field_validator("synthetic_margin")
    @classmethod
    def _margin_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low <= high < 0.5:
            raise ValueError(f"synthetic_margin must satisfy 0 <= low <= high < 0.5, got {value}")
        return value


class TrainConfig(ConfigModel):
    """Classifier training; the defaults are the study's."""

    model: Literal["study-cnn", "resnet18"] = Field(
        default="study-cnn", description="The study's conv32-conv64-fc128 CNN, or ResNet-18."
    )
    epochs: int = Field(default=10, gt=0, le=1000, description="Passes over the training set.")
    batch_size: int = Field(default=32, gt=0, le=4096, description="Images per step.")
    learning_rate: Share = Field(default=1e-3, description="Adam learning rate.")
    augment: bool = Field(default=False, description="Random flips and small shifts.")
    finetune_epochs: int = Field(
        default=5, gt=0, le=1000, description="Epochs on real data after synthetic pretraining."
    )
    budget: Literal["steps", "epochs"] = Field(
        default="steps",
        description="'steps': every recipe gets the same number of optimiser steps (`steps`), so "
        "a recipe with more images does not also get more updates and 'more data' is not "
        "confounded with 'more training'; 'epochs': `epochs` passes over each recipe's own "
        "images (the study's way: real + 1x synthetic then takes twice the steps of real-only).",
    )
    steps: int | None = Field(
        default=None,
        gt=0,
        le=10_000_000,
        description="Optimiser steps per model under budget 'steps'. Default: the real-only "
        "recipe's steps, `epochs` passes over the whole real train split, so real-only training "
        "is unchanged. pretrain-finetune splits it epochs : finetune_epochs between its phases.",
    )
    device: Device = Field(default="auto", description="Training device.")
    pretrained_weights: str | None = Field(
        default=None, description="Local ResNet-18 state dict to start from (never downloaded)."
    )


def _recipe_kinds() -> list[str]:
    from synth.training.recipes import RECIPES  # the registry imports this module: load late

    return list(RECIPES)


class RecipeConfig(ConfigModel):
    """One training recipe: which images train the model."""

    name: str = Field(description="Unique name used in reports and cache keys.", min_length=1)
    kind: str = Field(
        description="How the training images are chosen: a key of the recipe registry "
        "(synth/training/recipes.py `RECIPES`): real, real-augmented, synthetic, mix, "
        "real-plus-synthetic, pretrain-finetune, shots.",
        json_schema_extra=lambda schema: schema.update(enum=_recipe_kinds()),
    )
    synthetic_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0, description="'mix': share of synthetic images."
    )
    total: int | None = Field(
        default=None, gt=0, description="'mix': training set size (default: the real train size)."
    )
    synthetic_per_real: float = Field(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="'real-plus-synthetic' (and 'shots' with shots_synthetic 'matched'): "
        "synthetic images per real one.",
    )
    real_fraction: Share = Field(
        default=1.0,
        description="'shots': share of the real train split used, class-stratified; several "
        "shares trace accuracy against real images used (the exchange rate).",
    )
    shots_synthetic: Literal["none", "all", "matched"] = Field(
        default="none",
        description="'shots': no synthetic images, all of them (a fixed N at every share), or "
        "`synthetic_per_real` per real image used.",
    )
    quality_gate: bool = Field(
        default=True,
        description="Train on the synthetic images the quality gate kept (`quality`); False: on "
        "every verified synthetic image, to compare the gate on and off.",
    )

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, kind: str) -> str:
        kinds = _recipe_kinds()
        if kind not in kinds:
            raise ValueError(f"recipe kind {kind!r} is not one of {kinds}")
        return kind

    @field_validator("name")
    @classmethod
    def _name_is_key(cls, name: str) -> str:
        import re

        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ValueError(f"recipe name {name!r} must be lowercase letters, digits and dashes")
        return name


def _default_recipes() -> tuple[RecipeConfig, ...]:
    return (
        RecipeConfig(name="real", kind="real"),
        # The cheap alternative synthetic data must beat, not only "nothing" (Geng et al. 2024).
        RecipeConfig(name="real-augmented", kind="real-augmented"),
        RecipeConfig(name="synthetic", kind="synthetic"),
        RecipeConfig(name="mix-50", kind="mix", synthetic_fraction=0.5),
        RecipeConfig(name="mix-30", kind="mix", synthetic_fraction=0.3),
        RecipeConfig(name="real-plus-1x", kind="real-plus-synthetic", synthetic_per_real=1.0),
        RecipeConfig(name="pretrain-finetune", kind="pretrain-finetune"),
    )


# The quality gate's thresholds (the gate itself: synth/data/quality_gate.py). Here, not beside
# the gate, so parsing a config never imports torch.
class QualityConfig(BaseModel):
    """Thresholds of the quality gate; every field has a default and a reason."""

    model_config = _STRICT_FROZEN

    enabled: bool = Field(
        default=True,
        description="Drop images that fail a criterion. False still scores every image and "
        "records the reasons, but keeps all of them (to compare gate on and off).",
    )
    min_confidence: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        strict=True,  # a TOML `true` must not pass as 1.0
        description="Keep an image when the real-only classifier gives its own label at least "
        "this probability (0 disables). Ignored when `top_fraction` is set.",
    )
    top_fraction: Share | None = Field(
        default=None,
        strict=True,
        description="Instead of `min_confidence`: keep the ceil(q * n) most confident images of "
        "each class of n images (ties broken by file name). None: use `min_confidence`.",
    )
    clip_model: str | None = Field(
        default=None,
        description="Hugging Face hub id or local folder of a CLIP model scoring each image "
        "against its prompt; None disables the CLIP criterion.",
    )
    min_clip_score: float = Field(
        default=0.2,
        ge=-1.0,
        le=1.0,
        strict=True,
        description="Keep an image when the cosine similarity of its CLIP image embedding and its "
        "prompt's text embedding is at least this (raw cosine, not CLIPScore's 2.5 x).",
    )
    dedupe_threshold: int | None = Field(
        default=4,
        ge=0,
        le=64,
        strict=True,
        description="Two images whose 64-bit DCT perceptual hashes differ in at most this many "
        "bits are near-duplicates; the first by file name is kept. None disables it.",
    )
    device: Device = Field(
        default="auto", description="Where the classifier and CLIP run; 'auto' takes CUDA."
    )

    @field_validator("clip_model")
    @classmethod
    def _clip_model_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("clip_model must be a hub id, a folder, or None; got a blank string")
        return value


class ExperimentConfig(ConfigModel):
    """The whole study: generate, import real data, preprocess, train recipes, evaluate, explain."""

    name: str = Field(default="experiment", min_length=1, description="Run name in reports.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    real_data: str = Field(
        default="data/fruits",
        description="ImageFolder of real photos: <root>/<Class>/..., optionally train/ and test/.",
    )
    test_fraction: OpenShare = Field(
        default=0.2,
        description="Held-out share of each class when real_data has no test/ folder.",
    )
    split_seed: Seed = Field(
        default=0,
        description="Seed of that train/test split; its own seed, so preprocessing settings "
        "(preprocess.seed, margins) never move a photo between train and test.",
    )
    extra_test_sets: tuple[str, ...] = Field(
        default=(), description="More labelled folders to evaluate on (generalisation checks)."
    )
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    quality: QualityConfig = Field(
        default_factory=QualityConfig,
        description="The quality gate between generation and training (docs/GENERATION.md).",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    recipes: tuple[RecipeConfig, ...] = Field(default_factory=_default_recipes, min_length=1)
    mix_sweep: tuple[float, ...] = Field(
        default=(), description="Extra 'mix' recipes at these synthetic fractions (a sweep)."
    )
    shots: tuple[float, ...] = Field(
        default=(),
        description="Shares of the real train split for the 'shots' family: `shots-010` (10% of "
        "the real images) and `shots-010-syn` (the same + synthetic images) per share; 1.0 adds "
        "only `shots-100-syn` when a 'real' recipe exists (it is the 100% point).",
    )
    shots_synthetic: Literal["all", "matched"] = Field(
        default="all",
        description="Synthetic images of the `-syn` shots recipes: all of them, or "
        "`synthetic_per_real` (1) per real image used.",
    )
    seeds: tuple[Seed, ...] = Field(default=(0, 1, 2), min_length=1, description="Training seeds.")
    baseline: str = Field(
        default="real",
        min_length=1,
        description="Recipe every other recipe is compared with, paired on the same seeds and "
        "test images (docs/STATISTICS.md).",
    )
    cheap_baseline: str | None = Field(
        default="real-augmented",
        description="Second baseline for recipes that use synthetic images, when it is trained: "
        "the cheap alternative to generating images (None: none).",
    )
    replacement_margin: OpenShare = Field(
        default=0.02,
        description="Non-inferiority margin (accuracy) for 'replaces': a synthetic-only recipe "
        "replaces the baseline when its whole interval lies above -margin. Fix it before "
        "looking at results.",
    )
    shap_images_per_class: int = Field(
        default=2, ge=0, le=50, description="Test images per class explained with SHAP (0: off)."
    )
    feature_model: str | None = Field(
        default=None,
        description="CLIP or DINOv2 vision model (local folder or Hugging Face hub id) whose "
        "features measure the domain gap beside the real-only classifier's; None: the "
        "classifier's features only.",
    )
    out: str = Field(default="runs/experiment", description="Run output directory.")

    @field_validator("recipes")
    @classmethod
    def _unique_recipes(cls, recipes: tuple[RecipeConfig, ...]) -> tuple[RecipeConfig, ...]:
        names = [r.name for r in recipes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"recipe names must be unique, repeated: {dupes}")
        return recipes

    @field_validator("extra_test_sets")
    @classmethod
    def _test_sets_named_once(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        # A test set is reported under its folder's name (as synth.naming.extra_test_set_names
        # names it), so two alike, or one named like the main set, would replace each other.
        if any(not path.strip() for path in paths):
            raise ValueError("extra_test_sets must not contain blank paths")
        extra_test_set_names(paths)
        return paths

    @field_validator("mix_sweep")
    @classmethod
    def _fractions(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        bad = [v for v in values if not 0.0 <= v <= 1.0]
        if bad:
            raise ValueError(f"mix_sweep fractions must be within [0, 1], got {bad}")
        return values

    @field_validator("shots")
    @classmethod
    def _shares(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        bad = [v for v in values if not 0.0 < v <= 1.0]
        if bad:
            raise ValueError(f"shots shares must be within (0, 1], got {bad}")
        if len({round(v * 100) for v in values}) != len(values):
            raise ValueError(f"shots shares must differ in whole percent, got {list(values)}")
        return tuple(sorted(values))

    @model_validator(mode="after")
    def _baseline_is_a_recipe(self) -> ExperimentConfig:
        # Only a baseline the user named must exist; the default 'real' may be absent (the
        # report then says no verdict could be given).
        names = [r.name for r in self.all_recipes()]
        if "baseline" in self.model_fields_set and self.baseline not in names:
            raise ValueError(f"`baseline` {self.baseline!r} is not one of the recipes {names}")
        return self

    def all_recipes(self) -> tuple[RecipeConfig, ...]:
        """The configured recipes, one 'mix' per `mix_sweep` fraction, the `shots` family."""
        sweep = tuple(
            RecipeConfig(name=f"sweep-{round(f * 100):03d}", kind="mix", synthetic_fraction=f)
            for f in self.mix_sweep
        )
        return self.recipes + sweep + self._shots_recipes()

    def _shots_recipes(self) -> tuple[RecipeConfig, ...]:
        has_real = any(r.kind == "real" for r in self.recipes)
        family = []
        for share in self.shots:
            name = f"shots-{round(share * 100):03d}"
            if share < 1.0 or not has_real:  # at 100% the 'real' recipe is the same model
                family.append(RecipeConfig(name=name, kind="shots", real_fraction=share))
            family.append(
                RecipeConfig(
                    name=f"{name}-syn",
                    kind="shots",
                    real_fraction=share,
                    shots_synthetic=self.shots_synthetic,
                )
            )
        return tuple(family)
