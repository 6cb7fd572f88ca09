"""Prompt contexts: planned per image, deterministic, balanced, every pair covered."""

from __future__ import annotations

from collections import Counter

import pytest

from synth.generation.contexts import PlannedPrompt, plan_prompt, plan_prompts, template_fields

CONTEXTS = ("in a crate at a grocery store", "on a tree", "on a white table")


def test_plan_prompt_without_contexts_matches_generation_config_prompts():
    from synth.config import ClassSpec, GenerationConfig

    config = GenerationConfig(classes=[ClassSpec(name="kiwi", prompts=("a kiwi", "two kiwis"))])
    spec = config.classes[0]
    for i in range(5):
        planned = plan_prompt("kiwi", i, prompts=spec.prompts)
        assert planned == PlannedPrompt(config.prompt_for(spec, i), "")
    assert plan_prompt("apple", 3) == ("a photo of an apple", "")


def test_plan_prompt_appends_context_when_template_has_no_slot():
    prompt, context = plan_prompt("apple", 1, contexts=CONTEXTS)
    assert (prompt, context) == ("a photo of an apple on a tree", "on a tree")


@pytest.mark.parametrize(
    ("name", "prompt"),
    [
        ("orange", "a photo of an orange"),
        ("apple", "a photo of an apple"),
        ("banana", "a photo of a banana"),
        ("Egg plant", "a photo of an Egg plant"),
        ("unicorn", "a photo of a unicorn"),
        ("hourglass", "a photo of an hourglass"),
    ],
)
def test_default_template_puts_the_right_article_before_the_name(name, prompt):
    from synth.config import GenerationConfig

    config = GenerationConfig(classes=[name])
    assert config.prompt_for(config.classes[0], 0) == prompt
    assert plan_prompt(name, 0) == (prompt, "")  # the planner's default is the config's


def test_a_name_field_and_name_field_in_one_template():
    planned = plan_prompt("orange", 0, template="{a_name} ({name}) {context}", contexts=("cut",))
    assert planned == ("an orange (orange) cut", "cut")


def test_plan_prompt_fills_context_slot_in_template():
    planned = plan_prompt("apple", 2, template="{name} {context}, studio light", contexts=CONTEXTS)
    assert planned == ("apple on a white table, studio light", "on a white table")


def test_plan_prompt_empty_context_slot_leaves_no_double_space():
    assert plan_prompt("apple", 0, template="a {context} photo of {name}").prompt == (
        "a photo of apple"
    )


def test_plan_prompt_class_prompts_keep_braces_and_fill_literal_slot():
    planned = plan_prompt("kiwi", 0, prompts=("a {kiwi} {context}!",), contexts=("on ice",))
    assert planned == ("a {kiwi} on ice!", "on ice")


def test_plan_prompts_round_robin_covers_every_prompt_context_pair():
    prompts = ("a red apple", "a green apple")
    contexts = ("on a tree", "on a table")  # P and C share a factor: i % C would miss pairs
    planned = plan_prompts("apple", 4, prompts=prompts, contexts=contexts)
    pairs = {(p.prompt, p.context) for p in planned}
    assert len(pairs) == 4
    assert planned[1] == ("a green apple on a tree", "on a tree")


def test_plan_prompts_balances_contexts_and_is_deterministic():
    planned = plan_prompts("apple", 10, contexts=CONTEXTS)
    counts = Counter(p.context for p in planned)
    assert sorted(counts.values()) == [3, 3, 4]
    assert planned == plan_prompts("apple", 10, contexts=CONTEXTS)
    # image i's plan does not depend on how many images are planned
    assert plan_prompts("apple", 4, contexts=CONTEXTS) == planned[:4]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"index": -1}, "`index` must be >= 0"),
        ({"name": " "}, "`name` must not be blank"),
        ({"contexts": ("on a tree", " ")}, "`contexts` must not contain blank"),
        ({"contexts": "on a tree"}, "`contexts` must be a tuple of strings"),
        ({"prompts": ("",)}, "`prompts` must not contain blank"),
        ({"template": "a {name.upper}"}, "may only use the fields"),
        ({"template": "a {colour} {name}"}, "may only use the fields"),
        ({"template": "a {name"}, "is not a valid template"),
    ],
)
def test_plan_prompt_rejects_bad_inputs(kwargs, match):
    args = {"name": "apple", "index": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        plan_prompt(args.pop("name"), args.pop("index"), **args)


def test_template_fields_lists_used_fields():
    assert template_fields("a {name} {context}") == {"name", "context"}
    assert template_fields("plain") == set()
