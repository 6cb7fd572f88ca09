import pytest

from synth.naming import class_dirname, validate_class_names
from synth.seeds import image_seed


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("..", "directory"),
        (".", "directory"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("bad\x00name", "control"),
        ("line\nbreak", "control"),
        (".hidden", "starts with"),
        ("x" * 300, "longer"),
    ],
)
def test_class_dirname_rejects_unsafe_names(name, why):
    with pytest.raises(ValueError, match=why):
        class_dirname(name)


def test_class_dirname_keeps_ordinary_names():
    assert class_dirname(" Granny Smith ") == "Granny Smith"
    assert class_dirname("pomme-de-terre_2") == "pomme-de-terre_2"


def test_validate_class_names_rejects_duplicates_after_normalisation():
    with pytest.raises(ValueError, match="duplicates"):
        validate_class_names(["Apple", "apple"])
    with pytest.raises(ValueError, match="duplicates"):
        validate_class_names(["caf\u00e9", "cafe\u0301"])  # same word, two Unicode forms


def test_image_seed_depends_only_on_dataset_seed_class_and_index():
    assert image_seed(0, "apple", 3) == image_seed(0, "apple", 3)
    seeds = {image_seed(s, c, i) for s in (0, 1) for c in ("apple", "banana") for i in range(50)}
    assert len(seeds) == 200
    assert all(0 <= s < 2**63 for s in seeds)
