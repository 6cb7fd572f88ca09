"""Config fuzzing: any value for any field is either rejected naming the field, or valid.

"Valid" is judged by an oracle written here from the field descriptions, independently of the
validators in synth/config.py. The gaps this campaign found (booleans read as numbers, template
fields other than '{name}', a class named like the manifest, unbounded seeds, infinite ratios,
blank paths, an override below a scalar) are fixed in synth/config.py and synth/naming.py; the
broad properties now cover those inputs too, and each gap keeps a test of its own below.

The default tests are derandomized and draw the same examples whatever else the run loads:
tests/conftest.py pins hypothesis's pool of constants harvested from loaded modules (pinned by
`test_draws_do_not_depend_on_the_modules_loaded`). Wider random exploration, with that harvest,
runs with `-m fuzz` on a bounded budget (`WIDE`).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import string
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.config import (
    ExperimentConfig,
    GenerationConfig,
    PreprocessConfig,
    QualityConfig,
    RecipeConfig,
    TrainConfig,
    load_config,
    parse_config,
)
from synth.errors import ConfigError

FUZZ = settings(
    max_examples=100,  # x 70 fields: about the time 150 x 44 fields took
    deadline=None,  # shared CPUs: never a timing threshold
    derandomize=True,  # the same examples on every run and machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# `-m fuzz`: a new seed each run (a failure prints the blob that replays it), the project's own
# source constants in the pool, and a bounded budget: 1,000 values per field, ~50,000 configs.
WIDE = settings(FUZZ, max_examples=1000, derandomize=False)

# ------------------------------------------------------------------------------------ oracles


def _int(low: int, high: int | None = None):
    return lambda v: type(v) is int and v >= low and (high is None or v <= high)


def _real(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    def ok(v: Any) -> bool:
        if type(v) is not float or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return ok


def _one_of(*allowed: str):
    return lambda v: v in allowed


def _text(v: Any) -> bool:
    return type(v) is str


def _nonblank(v: Any) -> bool:
    return type(v) is str and v.strip() != ""


def _dirname_ok(name: Any) -> bool:
    """DESIGN.md: no separators, no '..', no control characters; hidden and over-long refused."""
    if type(name) is not str:
        return False
    clean = unicodedata.normalize("NFC", name.strip())
    try:
        size = len(clean.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return (
        clean not in ("", ".", "..")
        and not clean.startswith(".")
        and "/" not in clean
        and "\\" not in clean
        and not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in clean)
        and size <= 200
        and clean.casefold() != "metadata.jsonl"  # the manifest's own name in the split folder
    )


def _classes_ok(classes: Any) -> bool:
    if not classes:
        return False
    names = [c.name for c in classes]
    if not all(_dirname_ok(n) for n in names):
        return False
    keys = [
        unicodedata.normalize("NFKC", unicodedata.normalize("NFC", n.strip())).casefold()
        for n in names
    ]
    return len(keys) == len(set(keys)) and all(
        all(_nonblank(p) for p in c.prompts) for c in classes
    )


def _template_ok(template: Any) -> bool:
    """A prompt template may hold the fields '{name}', '{a_name}' (the name after its article)
    and '{context}' (no attribute, index or conversion, no field nested in a format spec), and
    formats whatever the class is called."""
    if not _nonblank(template):
        return False
    try:
        fields = [(f, s, c) for _, f, s, c in string.Formatter().parse(template) if f is not None]
    except ValueError:
        return False
    plain = all(
        f in ("name", "a_name", "context") and c is None and "{" not in s for f, s, c in fields
    )
    return plain and all(_formats(template, name) for name in ("x", "apple", "5"))


def _formats(template: str, name: str) -> bool:
    try:
        template.format(name=name, a_name=f"a {name}", context="on a table")
        return True
    except (KeyError, IndexError, ValueError, AttributeError):
        return False


def _test_sets_ok(paths: Any) -> bool:
    """Extra test sets are reported under their folder's name: unique, and not the main set's."""
    if not isinstance(paths, tuple) or not all(_nonblank(p) for p in paths):
        return False
    names = [Path(os.path.abspath(p)).name.casefold() for p in paths]
    return all(names) and len(set(names)) == len(names) and not {"real", "real-test"} & set(names)


def _optional(ok):
    return lambda v: v is None or ok(v)


def _shares_ok(v: Any) -> bool:
    """'shots': shares of the real train split in (0, 1], told apart by their whole percent."""
    return (
        isinstance(v, tuple)
        and all(_real(0.0, 1.0, low_open=True)(x) for x in v)
        and len({round(x * 100) for x in v}) == len(v)
    )


def _margin_ok(v: Any) -> bool:
    return (
        isinstance(v, tuple)
        and len(v) == 2
        and all(type(x) is float and math.isfinite(x) for x in v)
        and 0.0 <= v[0] <= v[1] < 0.5
    )


GENERATION = {
    "classes": _classes_ok,
    "prompt_template": _template_ok,
    "negative_prompt": _text,
    "images_per_class": _int(1, 1_000_000),
    "seed": _int(0, 2**63 - 1),
    "model": _nonblank,
    "revision": lambda v: v is None or _nonblank(v),
    "scheduler": _one_of(
        "default", "ddim", "pndm", "euler", "euler-ancestral", "dpm-solver", "unipc"
    ),
    "steps": _int(1, 1000),
    "guidance_scale": _real(0.0, 50.0),
    "width": lambda v: _int(8, 4096)(v) and v % 8 == 0,
    "height": lambda v: _int(8, 4096)(v) and v % 8 == 0,
    "batch_size": _int(1, 256),
    "device": _one_of("auto", "cuda", "cpu"),
    "dtype": _one_of("auto", "fp16", "bf16", "fp32"),
    "contexts": lambda v: isinstance(v, tuple) and all(_nonblank(c) for c in v),
    "lora": lambda v: v is None or _nonblank(v),
    "lora_scale": _real(0.0, 4.0),
    # the default steps (30) x the default strength (0.75) leave img2img at least one step
    "strategy": _one_of("text2img", "img2img"),
    "source_test_fraction": _real(0.0, 1.0, low_open=True, high_open=True),
    "source_split_seed": _int(0, 2**63 - 1),
}
# With strategy 'img2img' (base below): its own fields, and the text-to-image field it refuses.
# img2img runs int(steps x strength) denoising steps, which must be at least one.
IMG2IMG = {
    "source_images": _optional(_nonblank),
    "variations_per_image": _int(1, 1000),
    "strength": lambda v: _real(0.0, 1.0, low_open=True)(v) and 30 * v >= 1,
    "steps": lambda v: _int(1, 1000)(v) and v * 0.75 >= 1,
    "images_per_class": lambda v: type(v) is int and v == 10,  # only the default: not used
}
# Outside img2img its fields keep their defaults (a value set there would be ignored)
TEXT2IMG_ONLY_DEFAULTS = {
    "source_images": lambda v: v is None,
    "variations_per_image": lambda v: type(v) is int and v == 1,
    "strength": lambda v: type(v) is float and v == 0.75,
}
PREPROCESS = {
    "size": _int(8, 1024),
    "padding": _one_of("black", "white", "mean", "noise"),
    "synthetic_margin": _margin_ok,
    "seed": _int(0),
}
TRAIN = {
    "model": _one_of("study-cnn", "resnet18"),
    "epochs": _int(1, 1000),
    "batch_size": _int(1, 4096),
    "learning_rate": _real(0.0, 1.0, low_open=True),
    "augment": lambda v: type(v) is bool,
    "finetune_epochs": _int(1, 1000),
    "device": _one_of("auto", "cuda", "cpu"),
    "pretrained_weights": lambda v: v is None or _nonblank(v),
    "budget": _one_of("steps", "epochs"),
    "steps": _optional(_int(1, 10_000_000)),
}
RECIPE = {
    "name": lambda v: type(v) is str and re.fullmatch(r"[a-z0-9][a-z0-9-]*", v) is not None,
    "kind": _one_of(
        "real",
        "real-augmented",
        "synthetic",
        "mix",
        "real-plus-synthetic",
        "pretrain-finetune",
        "shots",
    ),
    "synthetic_fraction": _real(0.0, 1.0),
    "total": lambda v: v is None or _int(1)(v),
    "synthetic_per_real": _real(0.0, 1000.0),
    "real_fraction": _real(0.0, 1.0, low_open=True),
    "shots_synthetic": _one_of("none", "all", "matched"),
    "quality_gate": lambda v: type(v) is bool,
}
# The default recipes' names: a baseline the user names must be one of them
DEFAULT_RECIPES = (
    "real",
    "real-augmented",
    "synthetic",
    "mix-50",
    "mix-30",
    "real-plus-1x",
    "pretrain-finetune",
)
EXPERIMENT = {
    "name": _nonblank,
    "real_data": _nonblank,
    "test_fraction": _real(0.0, 1.0, low_open=True, high_open=True),
    "split_seed": _int(0, 2**63 - 1),
    "extra_test_sets": _test_sets_ok,
    "mix_sweep": lambda v: isinstance(v, tuple) and all(_real(0.0, 1.0)(f) for f in v),
    # torch's manual_seed takes [-2**63, 2**64)
    "seeds": lambda v: (
        isinstance(v, tuple) and len(v) > 0 and all(_int(-(2**63), 2**64 - 1)(s) for s in v)
    ),
    "shap_images_per_class": _int(0, 50),
    "out": _nonblank,
    "shots": _shares_ok,
    "shots_synthetic": _one_of("all", "matched"),
    "baseline": lambda v: v in DEFAULT_RECIPES,
    "cheap_baseline": _optional(_nonblank),
    "replacement_margin": _real(0.0, 1.0, low_open=True, high_open=True),
    "feature_model": _optional(_nonblank),
}
QUALITY = {
    "enabled": lambda v: type(v) is bool,
    "min_confidence": _real(0.0, 1.0),
    "top_fraction": _optional(_real(0.0, 1.0, low_open=True)),
    "clip_model": _optional(_nonblank),
    "min_clip_score": _real(-1.0, 1.0),
    "dedupe_threshold": _optional(_int(0, 64)),
    "device": _one_of("auto", "cuda", "cpu"),
}
# id -> (model, the other fields' values, oracle per fuzzed field)
MODELS = {
    "GenerationConfig": (GenerationConfig, {}, GENERATION | TEXT2IMG_ONLY_DEFAULTS),
    "GenerationConfig[img2img]": (GenerationConfig, {"strategy": "img2img"}, IMG2IMG),
    "PreprocessConfig": (PreprocessConfig, {}, PREPROCESS),
    "TrainConfig": (TrainConfig, {}, TRAIN),
    "RecipeConfig": (RecipeConfig, {"name": "r", "kind": "real"}, RECIPE),
    "ExperimentConfig": (ExperimentConfig, {}, EXPERIMENT),
    "QualityConfig": (QualityConfig, {}, QUALITY),
}

# ---------------------------------------------------------------------------------- strategies

_edges = st.sampled_from(
    [0, 1, -1, 7, 8, 9, 50, 51, 255, 256, 1000, 1001, 4096, 4097, 10**6, 10**6 + 1, 2**63 - 1]
    + [2**63, -(2**63), 0.0, -0.0, 0.5, 0.49, 1.0, 1.5, 7.5, 50.0, 50.5, 1e308, 1e-300]
    + [math.nan, math.inf, -math.inf, "", " ", "5", "0x10", "1e3", "auto", "cpu", "cuda", "fp16"]
    + ["{name}", "{0}", "{}", "{name", "}", "{nam}", "{name:>{name}}", "a photo of a {name}"]
    + ["{name.upper}", "{name[0]}", "{name!r}", "{name:>5}", "{name.__class__}"]
    + ["..", ".", "a/b", "a\\b", ".hidden", "x\x00y", "tab\t", "é", "e\u0301", "\ud800", "r"]
    + ["metadata.jsonl", "mix", "real", "study-cnn", "black", "x" * 201]
    + ["{a_name}", "a photo of {a_name}", "{a_name!r}", "{a_name.x}", "img2img", "text2img"]
    + ["steps", "epochs", "all", "none", "matched", "shots", "real-augmented", "mix-50"]
    + [0.75, 0.03, 0.04, 0.001, 0.015, 0.01, 64, 65, -1.0, 1000.0, 1000.5, 10**7, 10**7 + 1]
)
_scalars = st.one_of(
    _edges,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
VALUES = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
CLASS_NAMES = st.lists(st.one_of(_edges.filter(lambda v: type(v) is str), st.text(max_size=8)))
CLASS_LISTS = st.one_of(
    CLASS_NAMES,
    st.lists(st.fixed_dictionaries({"name": st.text(max_size=6), "prompts": VALUES}), max_size=3),
)


def _values_for(field: str) -> st.SearchStrategy:
    """Edge values and scalars most of the time, nested junk sometimes; lists for classes."""
    strategy = st.one_of(_edges, _scalars, VALUES, st.lists(_edges, min_size=1, max_size=3))
    return strategy | CLASS_LISTS if field == "classes" else strategy


def _check(section: str, data: dict[str, Any], field: str, value: Any) -> str:
    """Parse; a rejection must name `field`, an acceptance must pass the oracle."""
    model, _, oracle = MODELS[section]
    try:
        parsed = parse_config(model, data)
    except ConfigError as exc:
        assert f"`{field}" in str(exc), (field, value, str(exc))
        return "rejected"
    accepted = getattr(parsed, field)
    assert oracle[field](accepted), f"{section}.{field}={value!r} accepted"
    return "accepted"


# ---------------------------------------------------------------------------------- properties


FIELDS = [(section, field) for section, (*_, oracle) in MODELS.items() for field in sorted(oracle)]


FIELD_IDS = [f"{m}.{f}" for m, f in FIELDS]


def _fuzz_field(section: str, field: str, budget: settings) -> None:
    _, base, _ = MODELS[section]
    seen = {"accepted": 0, "rejected": 0}

    @budget
    @given(_values_for(field))
    def check(value):
        seen[_check(section, {**base, field: value}, field, value)] += 1

    check()
    assert seen["rejected"] > 0, seen  # the strategy reaches invalid values of every field


@pytest.mark.parametrize(("section", "field"), FIELDS, ids=FIELD_IDS)
def test_every_field_value_is_rejected_naming_the_field_or_valid(section, field):
    _fuzz_field(section, field, FUZZ)


@pytest.mark.fuzz
@pytest.mark.parametrize(("section", "field"), FIELDS, ids=FIELD_IDS)
def test_wide_random_values_are_rejected_naming_the_field_or_valid(section, field):
    _fuzz_field(section, field, WIDE)


def _nested_field_is_named(field: str, value: Any) -> None:
    try:
        parse_config(ExperimentConfig, {"generation": {field: value}})
    except ConfigError as exc:
        assert f"`generation.{field}" in str(exc), (field, value, str(exc))


@FUZZ
@given(st.sampled_from(sorted(GENERATION)), VALUES)
def test_nested_generation_fields_are_named_with_their_section(field, value):
    _nested_field_is_named(field, value)


@pytest.mark.fuzz
@WIDE
@given(st.sampled_from(sorted(GENERATION)), VALUES)
def test_wide_nested_generation_fields_are_named_with_their_section(field, value):
    _nested_field_is_named(field, value)


@FUZZ
@given(st.dictionaries(st.text(max_size=10), VALUES, max_size=4))
def test_unknown_or_odd_keys_are_rejected_by_name(data):
    known = set(GenerationConfig.model_fields)
    if not set(data) - known:
        return
    with pytest.raises(ConfigError) as info:
        parse_config(GenerationConfig, data)
    for key in set(data) - known:
        assert f"`{key}`" in str(info.value) or not key, (key, str(info.value))


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(GENERATION)), VALUES, max_size=3))
def test_yaml_config_files_load_or_fail_with_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "gen.yaml"
    try:
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not representable as a YAML file
    try:
        config = load_config(path, GenerationConfig)
    except ConfigError as exc:
        assert any(f"`{k}" in str(exc) for k in data) or "not valid yaml" in str(exc), str(exc)
        return
    for field in data:
        assert GENERATION[field](getattr(config, field)), (field, data[field])


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([*(f"generation.{f}" for f in GENERATION), *(f"train.{f}" for f in TRAIN)]),
        VALUES,
        max_size=3,
    )
)
def test_overrides_are_validated_like_the_file(tmp_path_factory, overrides):
    """`--set key=value` overrides of an experiment file, into its sections."""
    path = tmp_path_factory.mktemp("cfg") / "experiment.toml"
    path.write_text('name = "fuzz"\n')
    try:
        load_config(path, ExperimentConfig, overrides)
    except ConfigError as exc:
        assert any(f"`{k}" in str(exc) for k in overrides), str(exc)


# ------------------------------------------------------------------ the gaps found, one test each


def test_config_rejects_booleans_for_numbers():
    with pytest.raises(ConfigError, match="`steps`"):
        parse_config(GenerationConfig, {"steps": True})


def test_config_rejects_template_fields_other_than_name():
    with pytest.raises(ConfigError, match="`prompt_template`"):
        parse_config(GenerationConfig, {"prompt_template": "a {name.upper}"})


def test_config_rejects_a_class_named_like_the_manifest():
    with pytest.raises(ConfigError, match="`classes`"):
        parse_config(GenerationConfig, {"classes": ["apple", "metadata.jsonl"]})


def test_config_rejects_seeds_torch_cannot_take():
    with pytest.raises(ConfigError, match="`seeds`"):
        parse_config(ExperimentConfig, {"seeds": [2**70]})


def test_config_rejects_infinite_synthetic_per_real():
    with pytest.raises(ConfigError, match="`synthetic_per_real`"):
        parse_config(RecipeConfig, {"name": "r", "kind": "real", "synthetic_per_real": math.inf})


def test_config_rejects_blank_paths():
    with pytest.raises(ConfigError, match="`real_data`"):
        parse_config(ExperimentConfig, {"real_data": " "})


def test_override_below_a_scalar_is_a_config_error(tmp_path):
    path = tmp_path / "gen.toml"
    path.write_text("seed = 3\n")
    with pytest.raises(ConfigError, match="`seed"):
        load_config(path, GenerationConfig, {"seed.x": 1})


def test_config_rejects_a_template_nesting_a_field_in_its_format_spec():
    """'{name:>{name}}' used the class name as its own format spec: 'apple' fails to format."""
    with pytest.raises(ConfigError, match="`prompt_template`"):
        parse_config(GenerationConfig, {"prompt_template": "{name:>{name}}"})


def test_config_rejects_blank_extra_test_sets():
    for blank in ("", " "):
        with pytest.raises(ConfigError, match="`extra_test_sets"):
            parse_config(ExperimentConfig, {"extra_test_sets": ["data/grocery", blank]})


@pytest.mark.parametrize(
    "paths",
    [["a/grocery", "b/grocery"], ["a/Grocery", "b/grocery/"], ["data/real-test"], ["/"]],
    ids=["same-name", "same-name-other-case", "main-test-set-name", "no-name"],
)
def test_config_rejects_extra_test_sets_that_cannot_be_told_apart(paths):
    """A test set is reported under its folder's name: two alike would replace each other."""
    with pytest.raises(ConfigError, match="`extra_test_sets`"):
        parse_config(ExperimentConfig, {"extra_test_sets": paths})


def test_config_accepts_distinct_extra_test_sets():
    paths = ["data/grocery-fruits", "other/fruits-360"]
    assert parse_config(ExperimentConfig, {"extra_test_sets": paths}).extra_test_sets == tuple(
        paths
    )


# ------------------------------------------------------------------------ draws that cannot flake


def test_draws_do_not_depend_on_the_modules_loaded(tmp_path, monkeypatch):
    """Importing a module full of new constants leaves a derandomized test's draws unchanged
    (without the pin in tests/conftest.py, hypothesis would mix these constants in)."""

    def draws() -> list[Any]:
        seen: list[Any] = []

        @FUZZ
        @given(st.text(max_size=12) | st.integers() | st.floats())
        def record(value):
            seen.append(value)

        record()
        return seen

    before = draws()
    module = tmp_path / "datasynth_fresh_constants.py"
    words = [f"zebra-{i}" for i in range(200)]
    module.write_text(f"WORDS = {words!r}\nNUMBERS = {list(range(10**9, 10**9 + 200))!r}\n")
    monkeypatch.syspath_prepend(tmp_path)
    try:
        importlib.import_module(module.stem)
        assert draws() == before
    finally:
        sys.modules.pop(module.stem, None)
