"""Which synth source a step runs, as one digest: the code part of every cache key and file name.

A step runs the module of its synth function and every `synth` module that module imports,
transitively (imports inside functions included: they run too). `source_closure` finds them by
reading the import statements, so a change to a file a step never imports leaves its digest, and
its cached results, alone. Two choices keep the closure to what actually runs:

- A parent package's `__init__.py` is not counted just because a submodule lives in it: the
  facades only re-export. It is counted when a module imports from the facade itself
  (`from synth.data import X`), and then so is everything the facade imports.
- `_NOT_FOLLOWED` lists the few late imports that only look up names to validate a config.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from importlib import metadata
from pathlib import Path

from synth.storage import content_key

__all__ = ["LIBRARIES", "code_digest", "library_versions", "source_closure", "source_digest"]

PACKAGE = "synth"
ROOT = Path(__file__).resolve().parent
# The libraries whose upgrades can change what a step computes (numerics, schedulers, models).
LIBRARIES = ("torch", "diffusers", "transformers")
# synth.config reads the recipe registry's keys only to check a recipe's `kind`; the step that
# trains a recipe imports synth.training.recipes itself. Following this edge would make every
# step that touches a config (generation, preprocessing) depend on the whole training code.
_NOT_FOLLOWED = {"synth.config": frozenset({"synth.training.recipes"})}


def _file(module: str, root: Path) -> Path | None:
    """The source file of `module` (a dotted `synth...` name) under `root`, or None."""
    parts = module.split(".")[1:]
    candidates = [root.joinpath(*parts).with_suffix(".py")] if parts else []
    candidates.append(root.joinpath(*parts, "__init__.py"))
    return next((p for p in candidates if p.is_file()), None)


def _imports(module: str, source: Path, root: Path) -> set[str]:
    """The `synth` modules `source` (the file of `module`) names in any import statement."""
    package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb from this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # `from synth import faults` imports a module; `from synth.x import f`, a name
                sub = f"{base}.{alias.name}"
                found.add(sub if _file(sub, root) else base)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def source_closure(module: str, root: Path = ROOT) -> tuple[str, ...]:
    """`module` and every synth module it imports, transitively, sorted by name."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        source = _file(name, root)
        if name in seen or source is None:
            continue
        seen.add(name)
        todo.extend(_imports(name, source, root) - _NOT_FOLLOWED.get(name, frozenset()))
    if module not in seen:
        raise ValueError(f"`module` {module!r} has no source file under {root}")
    return tuple(sorted(seen))


def source_digest(module: str, root: Path = ROOT) -> str:
    """sha256 of the names and bytes of every file in `source_closure(module, root)`."""
    h = hashlib.sha256()
    for name in source_closure(module, root):
        h.update(f"{name}\0".encode())
        h.update(_file(name, root).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """The installed version of each of `LIBRARIES` ('absent' when not installed)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@functools.cache
def code_digest(module: str) -> str:
    """A short digest of the code `module` runs: its synth source closure and `LIBRARIES`.

    Computed once per process: a process keeps running the code it imported, so a later edit on
    disk belongs to the next process's keys, not to this one's results.
    """
    return content_key(source_digest(module), library_versions())
