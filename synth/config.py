"""Configuration models: frozen pydantic models with a default, a constraint and a reason per field.

Configs live in TOML (or YAML) files that only override defaults; `load_config` reads them and
turns pydantic's errors into a `ConfigError` that names every bad field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synth.naming import validate_class_names

__all__ = ["ClassSpec", "ConfigError", "GenerationConfig", "load_config", "parse_config"]

M = TypeVar("M", bound=BaseModel)

SD15_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"

Scheduler = Literal["default", "ddim", "pndm", "euler", "euler-ancestral", "dpm-solver", "unipc"]


class ConfigError(ValueError):
    """A config file or value is invalid; the message names every bad field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClassSpec(_Frozen):
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


class GenerationConfig(_Frozen):
    """Everything that decides which images a synthetic dataset holds, and how they look."""

    classes: tuple[ClassSpec, ...] = Field(
        default=(ClassSpec(name="apple"), ClassSpec(name="banana"), ClassSpec(name="orange")),
        min_length=1,
        description="Classes to generate; a bare string is a class with no prompts of its own.",
    )
    prompt_template: str = Field(
        default="a photo of a {name}",
        description="Prompt for classes without prompts; '{name}' is the class name "
        "(the study used the bare name: '{name}').",
    )
    negative_prompt: str = Field(default="", description="Negative prompt ('' for none).")
    images_per_class: int = Field(default=10, gt=0, le=1_000_000, description="Images per class.")
    seed: int = Field(
        default=0, ge=0, lt=2**63, description="Dataset seed; image seeds derive from it."
    )
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
    width: int = Field(default=512, ge=8, le=4096, description="Image width in pixels (x8).")
    height: int = Field(default=512, ge=8, le=4096, description="Image height in pixels (x8).")
    batch_size: int = Field(default=4, gt=0, le=256, description="Images per pipeline call/task.")
    device: Literal["auto", "cuda", "cpu"] = Field(
        default="auto", description="'auto' takes CUDA when present."
    )
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = Field(
        default="auto", description="'auto' is fp16 on CUDA and fp32 on CPU."
    )

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
        try:
            template.format(name="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"prompt_template {template!r} may only use the field '{{name}}' ({exc!r})"
            ) from None
        if not template.strip():
            raise ValueError("prompt_template must not be blank")
        return template

    @model_validator(mode="after")
    def _sizes_multiple_of_8(self) -> GenerationConfig:
        for field in ("width", "height"):
            if getattr(self, field) % 8:
                raise ValueError(f"{field} must be a multiple of 8, got {getattr(self, field)}")
        return self

    def prompt_for(self, spec: ClassSpec, index: int) -> str:
        """The prompt of image `index` of class `spec`."""
        if spec.prompts:
            return spec.prompts[index % len(spec.prompts)]
        return self.prompt_template.format(name=spec.name)


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
        raise ConfigError(f"config file {str(path)!r} is not valid {path.suffix[1:]}: {exc}")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a table of settings")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
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
