"""Class names become directory names only after these checks; manifests keep the original."""

from __future__ import annotations

import os
import string
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from synth.errors import InputError

__all__ = [
    "DEFAULT_TEMPLATE",
    "RESERVED_TEST_SETS",
    "class_dirname",
    "extra_test_set_names",
    "fill_template",
    "template_fields",
    "validate_class_names",
    "with_article",
]

RESERVED_TEST_SETS = ("real", "real-test")  # the main real dataset reports under these

_MAX_NAME_BYTES = 200  # leaves room for a file name under the 255-byte limit of most filesystems

# Spellings whose first sound is not what their first letter says: "a unicorn", "a eucalyptus",
# "a one-pound coin", "an hour". Short on purpose: a class it gets wrong can set its own prompts.
_VOWEL_LETTER_CONSONANT_SOUND = ("eu", "ewe", "one", "uni", "use", "usu", "uten", "uku")
_CONSONANT_LETTER_VOWEL_SOUND = ("heir", "honest", "honor", "honour", "hour")


TEMPLATE_FIELDS = ("name", "a_name", "context")  # what `fill_template` puts in
DEFAULT_TEMPLATE = "a photo of {a_name}"  # GenerationConfig.prompt_template's default


def template_fields(
    template: str, what: str = "`template`", allowed: Sequence[str] = TEMPLATE_FIELDS
) -> set[str]:
    """The fields prompt template `template` uses; raises unless they are only `allowed` ones
    (by default `{name}`, `{a_name}` and `{context}`), plain (`what` names the template in the
    message).

    Raises:
        ValueError: A malformed template, or another field (e.g. `{name.x}` would put an
            attribute into every prompt).
    """
    try:
        parsed = [(f, conv, spec) for _, f, spec, conv in string.Formatter().parse(template)]
    except ValueError as exc:
        raise ValueError(f"{what} {template!r} is not a valid template ({exc})") from None
    fields = {f for f, _, _ in parsed if f is not None}
    bad = [f for f, conv, spec in parsed if f is not None and (f not in allowed or conv or spec)]
    if bad:
        named = [f"{{{f}}}" for f in allowed]
        listed = ", ".join(named[:-1]) + f" and {named[-1]}" if len(named) > 1 else named[0]
        raise ValueError(f"{what} {template!r} may only use the fields {listed}, got {bad}")
    return fields


def fill_template(template: str, name: str, context: str = "") -> str:
    """`template` (checked by `template_fields`) with class `name` and `context` put in."""
    return template.format(name=name, a_name=with_article(name), context=context)


def with_article(name: str) -> str:
    """`name` after its indefinite article: 'an orange', 'a banana', 'an hour', 'a unicorn'.

    'an' before a vowel letter and 'a' before any other character, except the spellings in
    the two short lists above, which sound the other way.
    """
    word = name.strip().casefold()
    vowel = word[:1] != "" and word[0] in "aeiou"
    if word.startswith(_VOWEL_LETTER_CONSONANT_SOUND + _CONSONANT_LETTER_VOWEL_SOUND):
        vowel = not vowel
    return f"{'an' if vowel else 'a'} {name}"


def class_dirname(name: str) -> str:
    """The directory name for class `name`, or `ValueError` saying why it cannot be one."""
    if not isinstance(name, str):
        raise InputError(f"class name must be a string, got {type(name).__name__}")
    clean = unicodedata.normalize("NFC", name.strip())
    if not clean:
        raise InputError(f"class name {name!r} is empty")
    if clean in (".", ".."):
        raise InputError(f"class name {name!r} is not allowed (it means a directory)")
    if "/" in clean or "\\" in clean:
        raise InputError(f"class name {name!r} contains a path separator")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in clean):
        raise InputError(f"class name {name!r} contains a control character")
    if clean.casefold() == "metadata.jsonl":
        raise InputError(f"class name {name!r} is reserved for the dataset's manifest")
    if clean.startswith("."):
        raise InputError(f"class name {name!r} starts with '.', which hides its folder")
    if len(clean.encode("utf-8")) > _MAX_NAME_BYTES:
        raise InputError(f"class name {name[:40]!r}... is longer than {_MAX_NAME_BYTES} bytes")
    return clean


def validate_class_names(names: list[str]) -> list[str]:
    """Directory names for `names`; rejects unsafe names and duplicates after normalisation.

    Two names that differ only by case or Unicode form would share a folder on macOS and Windows,
    so they count as duplicates.
    """
    dirnames = [class_dirname(n) for n in names]
    seen: dict[str, str] = {}
    for name, dirname in zip(names, dirnames, strict=True):
        key = unicodedata.normalize("NFKC", dirname).casefold()
        if key in seen:
            raise InputError(f"class names {seen[key]!r} and {name!r} are duplicates")
        seen[key] = name
    return dirnames


def extra_test_set_names(
    paths: Sequence[str], reserved: Sequence[str] = RESERVED_TEST_SETS
) -> list[str]:
    """The name of each extra test folder (its basename), checked to be unique.

    Names key reports, artifacts and `import-<name>.json`, so two folders named alike, or one
    named like the main dataset (`reserved`), would silently replace each other's results.
    """
    names = [Path(os.path.abspath(p)).name for p in paths]
    taken = {r.casefold(): f"the main real dataset's {r!r}" for r in reserved}
    for path, name in zip(paths, names, strict=True):
        if not name:
            raise InputError(f"extra test set {path!r} has no folder name to report it under")
        if name.casefold() in taken:
            raise InputError(
                f"extra test set {path!r} is named {name!r}, like {taken[name.casefold()]}: "
                "results would replace each other; rename or move the folder"
            )
        taken[name.casefold()] = f"extra test set {path!r}"
    return names
