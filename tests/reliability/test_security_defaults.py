"""Security defaults: no pickle from files a user hands us, and paths stay inside their roots."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from synth.data import load_tensor_set
from synth.errors import CheckpointError
from synth.generation import load_pipeline, manifest_path, model_info, prepare_output
from synth.training import build_model, load_checkpoint
from tests.reliability.engine import run_engine

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("synth", "tasks", "flows", "deployments")

# --------------------------------------------------------------------------- static: the source


def _calls(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _kwarg(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return ast.literal_eval(kw.value) if isinstance(kw.value, ast.Constant) else kw.value
    return None


# name of the callable -> why it is refused in code that reads user files
UNSAFE = {
    "pickle.load": "runs code from the file",
    "pickle.loads": "runs code from the bytes",
    "cloudpickle.load": "runs code from the file",
    "cloudpickle.loads": "runs code from the bytes",
    "dill.load": "runs code from the file",
    "joblib.load": "unpickles",
    "marshal.loads": "loads code objects",
    "pd.read_pickle": "unpickles",
    "pandas.read_pickle": "unpickles",
    "yaml.load": "may build arbitrary objects; use yaml.safe_load",
    "yaml.unsafe_load": "builds arbitrary objects",
    "eval": "runs text as code",
    "exec": "runs text as code",
}


def test_source_never_unpickles_or_evaluates_user_files():
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for call, name in _calls(path):
                where = f"{path.relative_to(REPO)}:{call.lineno}"
                if name in UNSAFE:
                    found.append(f"{where} {name}: {UNSAFE[name]}")
                if name == "torch.load" and _kwarg(call, "weights_only") is not True:
                    found.append(f"{where} torch.load without weights_only=True")
                if name.endswith("np.load") and _kwarg(call, "allow_pickle") is True:
                    found.append(f"{where} np.load(allow_pickle=True)")
                if name.endswith("from_pretrained") and _kwarg(call, "trust_remote_code"):
                    found.append(f"{where} from_pretrained(trust_remote_code=...)")
    assert not found, "\n".join(found)


# ---------------------------------------------------------------------- runtime: hostile files


class _Payload:
    """Unpickling this runs `Path(marker).touch()`: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def hostile_torch_file(path: Path, marker: Path) -> Path:
    """A torch.save file whose unpickling would run code (it holds a plain object)."""
    torch.save({"state_dict": _Payload(marker), "format": "datasynth-checkpoint"}, path)
    return path


def test_checkpoint_with_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile_torch_file(tmp_path / "model.pt", marker)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)
    assert not marker.exists()


def test_tensor_set_with_code_is_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile_torch_file(tmp_path / "real.pt", marker)
    with pytest.raises(pickle.UnpicklingError):
        load_tensor_set(path)
    assert not marker.exists()


def test_pretrained_weights_with_code_are_refused_and_the_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = hostile_torch_file(tmp_path / "resnet18.pt", marker)
    with pytest.raises(pickle.UnpicklingError):
        build_model("resnet18", 3, 64, str(path))
    assert not marker.exists()


def test_model_directory_with_pickled_weights_never_runs_their_code(tmp_path, tiny_model_dir):
    """A diffusers folder whose UNet weights are a hostile .bin instead of safetensors."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    for weights in (model / "unet").glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "pwned"
    with open(model / "unet" / "diffusion_pytorch_model.bin", "wb") as fh:
        pickle.dump({"conv_in.weight": _Payload(marker)}, fh)
    with pytest.raises(OSError, match="Unable to load weights") as info:  # diffusers' wrapper
        load_pipeline(str(model), revision=None, device="cpu", dtype="fp32", scheduler="default")
    chain, exc = [], info.value
    while exc is not None:
        chain.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    assert "UnpicklingError" in chain, chain  # refused by torch.load(weights_only=True)
    assert not marker.exists()


# ------------------------------------------------------------------ paths stay inside roots


def test_manifest_rows_pointing_outside_the_dataset_are_never_followed(tmp_path, tiny_config):
    """An edited metadata.jsonl must not make a resume delete (or count) files elsewhere."""
    out = tmp_path / "ds"
    config = tiny_config.model_copy(update={"images_per_class": 2})
    run_engine(config, out)
    victims = [tmp_path / "victim.png", tmp_path / "abs-victim.png"]
    for victim in victims:
        victim.write_bytes(b"precious")
    rows = manifest_path(out).read_text().splitlines()
    hostile = []
    for name in ("../../victim.png", str(victims[1]), "apple/../../../victim.png"):
        row = json.loads(rows[0]) | {"file_name": name, "sha256": "0" * 64}
        hostile.append(json.dumps(row))
    manifest_path(out).write_text("\n".join(rows + hostile) + "\n")
    state = prepare_output(out, config, model_info(config))
    assert all(v.read_bytes() == b"precious" for v in victims)
    assert state.repairs["stale_rows_dropped"] == 3 and not state.missing
    assert all(".." not in n and not os.path.isabs(n) for n in state.rows)
    kept = [json.loads(line)["file_name"] for line in manifest_path(out).read_text().splitlines()]
    assert len(kept) == 4 and all(n.count("/") == 1 and ".." not in n for n in kept)
