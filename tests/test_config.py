from pathlib import Path

import pytest

from synth.config import ExperimentConfig, GenerationConfig, load_config, parse_config
from synth.errors import ConfigError


def _write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_config_reads_toml_and_applies_overrides(tmp_path):
    path = _write(tmp_path, 'classes = ["cat", {name = "dog", prompts = ["a dog"]}]\nsteps = 5\n')
    cfg = load_config(path, GenerationConfig, {"seed": 42})
    assert [c.name for c in cfg.classes] == ["cat", "dog"]
    assert cfg.steps == 5 and cfg.seed == 42
    assert cfg.prompt_for(cfg.classes[0], 3) == "a photo of a cat"  # the default template
    assert cfg.prompt_for(cfg.classes[1], 3) == "a dog"


def test_load_config_reads_yaml(tmp_path):
    path = _write(tmp_path, "classes: [cat]\nprompt_template: '{name}'\n", "c.yaml")
    cfg = load_config(path)
    assert cfg.prompt_for(cfg.classes[0], 0) == "cat"  # the study's bare class-name prompt


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"images_per_class": 0}, "images_per_class"),
        ({"width": 65}, "width"),
        ({"steps": "many"}, "steps"),
        ({"device": "tpu"}, "device"),
        ({"bogus": 1}, "bogus"),
        ({"classes": []}, "classes"),
        ({"classes": ["a/b"]}, "classes"),
        ({"classes": ["Apple", "apple"]}, "classes"),
        ({"prompt_template": "a {thing}"}, "prompt_template"),
        ({"guidance_scale": -1}, "guidance_scale"),
    ],
)
def test_parse_config_rejects_bad_field_naming_it(data, field):
    with pytest.raises(ConfigError, match=f"`{field}"):
        parse_config(GenerationConfig, data)


def test_load_config_rejects_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid toml"):
        load_config(_write(tmp_path, "classes = [\n"))


def test_experiment_config_rejects_duplicate_recipes_and_expands_sweep():
    with pytest.raises(ConfigError, match="`recipes`"):
        parse_config(ExperimentConfig, {"recipes": [{"name": "a", "kind": "real"}] * 2})
    cfg = parse_config(ExperimentConfig, {"mix_sweep": [0.25, 1.0]})
    names = [r.name for r in cfg.all_recipes()]
    assert names[-2:] == ["sweep-025", "sweep-100"]


def test_generation_config_is_frozen():
    cfg = GenerationConfig()
    with pytest.raises(ValueError):
        cfg.steps = 3  # type: ignore[misc]
