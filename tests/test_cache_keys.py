"""Cache keys see the synth code a step runs (its source closure only) and the libraries."""

import shutil
from pathlib import Path

import pytest

import synth
from synth import code_digest as cd
from synth.data import preprocess_real, preprocess_synthetic
from synth.data.quality_gate import run_quality_gate
from synth.evaluation import evaluate_checkpoint, explain_checkpoint
from synth.generation import generate_batch
from synth.training import train_checkpoint
from tasks.caching import SynthCode
from tasks.evaluate import evaluate, explain
from tasks.generate import generate_images
from tasks.preprocess import preprocess_real_split, preprocess_synthetic_set
from tasks.quality import quality_gate
from tasks.train import train_recipe_seed

TRAIN, PREPROCESS, GENERATE = (
    "synth.training.recipes",
    "synth.data.tensor_cache",
    "synth.generation.batch",
)


@pytest.fixture
def synth_copy(tmp_path) -> Path:
    """A real copy of the synth package to edit without touching the working tree."""
    root = tmp_path / "synth"
    shutil.copytree(Path(synth.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _digests(root: Path) -> dict[str, str]:
    return {m: cd.source_digest(m, root) for m in (TRAIN, PREPROCESS, GENERATE)}


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit\n")


def test_training_digest_follows_training_code_only(synth_copy):
    before = _digests(synth_copy)
    assert before == _digests(Path(synth.__file__).parent)  # a copy digests like the original

    _edit(synth_copy / "reporting" / "study_report.py")  # only the report runs this file
    assert _digests(synth_copy) == before

    _edit(synth_copy / "training" / "trainer.py")
    after = _digests(synth_copy)
    assert after[TRAIN] != before[TRAIN]
    # config.py's late look-up of the recipe registry does not tie these to the training code
    assert after[PREPROCESS] == before[PREPROCESS] and after[GENERATE] == before[GENERATE]


def test_shared_module_change_reaches_every_step_that_imports_it(synth_copy):
    before = _digests(synth_copy)
    _edit(synth_copy / "storage.py")
    after = _digests(synth_copy)
    assert all(after[m] != before[m] for m in before)


def test_closure_follows_relative_late_and_facade_imports(tmp_path):
    root = tmp_path / "synth"
    (root / "stage").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "base.py").write_text("")
    (root / "unused.py").write_text("")
    (root / "other" / "deep").mkdir(parents=True)
    (root / "other" / "__init__.py").write_text("from synth.other.deep.leaf import f\n")
    (root / "other" / "deep" / "__init__.py").write_text("")
    (root / "other" / "deep" / "leaf.py").write_text("def f(): ...\n")
    (root / "stage" / "__init__.py").write_text("from synth.stage.entry import run\n")
    (root / "stage" / "entry.py").write_text(
        "from .. import base\n\ndef run():\n    from synth.other import f\n"
    )
    assert cd.source_closure("synth.stage.entry", root) == (
        "synth.base",
        "synth.other",
        "synth.other.deep.leaf",
        "synth.stage.entry",
    )
    with pytest.raises(ValueError, match="module"):
        cd.source_closure("synth.missing", root)


def test_library_versions_change_the_code_digest(monkeypatch):
    before = cd.code_digest.__wrapped__(TRAIN)
    monkeypatch.setattr(cd.metadata, "version", lambda name: "0.0-other")
    assert cd.library_versions() == dict.fromkeys(cd.LIBRARIES, "0.0-other")
    assert cd.code_digest.__wrapped__(TRAIN) != before


@pytest.mark.parametrize(
    ("task", "runs"),
    [
        (generate_images, generate_batch),
        (preprocess_real_split, preprocess_real),
        (preprocess_synthetic_set, preprocess_synthetic),
        (quality_gate, run_quality_gate),
        (train_recipe_seed, train_checkpoint),
        (evaluate, evaluate_checkpoint),
        (explain, explain_checkpoint),
    ],
)
def test_every_science_step_keys_on_its_inputs_and_its_synth_code(task, runs):
    kinds = {type(p).__name__: p for p in task.cache_policy.policies}
    assert {"Inputs", "TaskSource", "SynthCode"} <= set(kinds)
    code: SynthCode = kinds["SynthCode"]
    assert code.module == runs.__module__
    assert code.digest == cd.code_digest(runs.__module__)
