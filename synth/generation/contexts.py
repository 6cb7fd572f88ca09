"""Prompt contexts: scenes, backgrounds or styles combined with each class, planned per image.

Scheme (round-robin over the cross product): with P class prompts (P = 1 when the class uses the
template) and C contexts, image i of a class gets

    prompt  = prompts[i % P]            (or the template)
    context = contexts[(i // P) % C]

so the first P x C images of every class hold each (prompt, context) pair exactly once, and each
context gets n // C or n // C + 1 of a class's n images. Indexing contexts by `i % C` instead would
never pair some prompts with some contexts whenever P and C share a factor (P = C = 2 gives only
two of the four pairs). The plan depends on the class's index alone, never on the seed: a new seed
changes the noise, not what is asked for. With no contexts, prompts are those of
`GenerationConfig.prompt_for`, so existing datasets keep their prompts.

Where the context goes: a `{context}` field in the template (or the literal text `{context}` in a
class prompt) puts it there; otherwise it is appended after a space ("a photo of an apple" +
"on a tree" -> "a photo of an apple on a tree").

A template writes the class name as `{name}` ("apple"), or with its indefinite article as
`{a_name}` ("an apple", `synth.naming.with_article`); the default template uses `{a_name}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from synth.naming import DEFAULT_TEMPLATE, fill_template, template_fields

__all__ = [
    "DEFAULT_TEMPLATE",
    "PlannedPrompt",
    "plan_prompt",
    "plan_prompts",
    "template_fields",
]


class PlannedPrompt(NamedTuple):
    """The prompt of one image and the context it uses ('' when there are no contexts)."""

    prompt: str
    context: str


def _check(name: str, index: int, prompts: Sequence[str], contexts: Sequence[str]) -> None:
    if not name.strip():
        raise ValueError("`name` must not be blank")
    if index < 0:
        raise ValueError(f"`index` must be >= 0, got {index}")
    for argument, values in (("prompts", prompts), ("contexts", contexts)):
        if isinstance(values, str):  # a bare string would be planned character by character
            raise ValueError(f"`{argument}` must be a tuple of strings, got the string {values!r}")
        blank = [v for v in values if not v.strip()]
        if blank:
            raise ValueError(f"`{argument}` must not contain blank strings, got {list(values)}")


def plan_prompt(
    name: str,
    index: int,
    *,
    template: str = DEFAULT_TEMPLATE,
    prompts: Sequence[str] = (),
    contexts: Sequence[str] = (),
) -> PlannedPrompt:
    """The prompt and context of image `index` of class `name` (see the module's scheme).

    Args:
        name: The class name, substituted for `{name}` in `template` (and, after its article,
            for `{a_name}`).
        index: The image's index within its class (0-based).
        template: Used when `prompts` is empty; may hold `{name}` and `{context}`.
        prompts: The class's own full prompts (descriptions), used in turn.
        contexts: Scenes / backgrounds / styles, used in turn; empty for none.

    Returns:
        `(prompt, context)`; context is '' when `contexts` is empty.

    Raises:
        ValueError: A blank name or entry, a negative index, or a bad template.
    """
    _check(name, index, prompts, contexts)
    fields = template_fields(template)
    per_context = max(len(prompts), 1)
    context = contexts[(index // per_context) % len(contexts)] if contexts else ""
    if prompts:
        base = prompts[index % len(prompts)]
        # class prompts are verbatim text: only the literal '{context}' is special, so other
        # braces a user wrote stay as they are
        placed = "{context}" in base
        text = base.replace("{context}", context) if placed else base
    else:
        placed = "context" in fields
        text = fill_template(template, name, context)
    if not placed:
        return PlannedPrompt(f"{text} {context}" if context else text, context)
    # an empty context leaves the spaces around its slot: "a  photo" -> "a photo"
    return PlannedPrompt(text if context else " ".join(text.split()), context)


def plan_prompts(name: str, count: int, **options: Any) -> list[PlannedPrompt]:
    """`plan_prompt` for images 0..count-1 of one class; `options` are its keyword arguments."""
    if count < 0:
        raise ValueError(f"`count` must be >= 0, got {count}")
    return [plan_prompt(name, i, **options) for i in range(count)]
