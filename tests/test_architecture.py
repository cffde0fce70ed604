"""The layering of docs/ARCHITECTURE.md, checked: a stage imports only from the layers below it, lazy imports too.

``TYPE_CHECKING`` imports are exempt (they never run). A violation names the file and the import.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import reidkit

ROOT = Path(reidkit.__file__).parent

# The layer of every top-level module or package; an import must go to a strictly lower layer.
LAYERS = {
    "errors": 0,
    "registry": 1,
    "lazy_exports": 1,
    "shared_files": 1,
    "image_open": 1,
    "openvino_core": 1,
    "atomic_file": 1,
    "attribute_schema": 2,
    "recipes": 1,
    "config": 2,
    "data": 3,
    "evaluation": 3,
    "models": 3,
    "store": 3,
    "losses": 4,
    "inference": 4,
    "clustering": 4,
    "video": 5,
    "search": 6,
    "viz": 7,
    "live": 7,
    "album": 7,
    "training": 8,
    "demos": 9,
    "service": 9,
    "cli": 10,
    "__main__": 11,
}


def _unit(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return parts[0].removesuffix(".py")


def _imported_units(tree: ast.AST) -> list[tuple[int, str]]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("reidkit."):
            found.append((node.lineno, node.module.split(".")[1]))  # type: ignore[union-attr]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "reidkit":
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("reidkit."))
    return found


def test_every_module_belongs_to_a_layer() -> None:
    units = {_unit(path) for path in ROOT.rglob("*.py")} - {"__init__"}
    assert units == set(LAYERS), "add new top-level modules to LAYERS (and docs/ARCHITECTURE.md)"


def test_imports_run_downwards_only() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        me = _unit(path)
        if me == "__init__":
            continue
        for line, target in _imported_units(ast.parse(path.read_text(encoding="utf-8"))):
            if target != me and LAYERS[target] >= LAYERS[me]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports reidkit.{target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_reading_records_loads_no_writer_ingest_or_index_library() -> None:
    """The viz page, the service's read paths and a read-only store import no store writer, no ingest, and no
    FAISS or Milvus: a backend's module is imported only when a store that uses it opens its indexes."""
    readers = ("reidkit.viz.search_page", "reidkit.store.reader", "reidkit.service.reader",
               "reidkit.service.routers.search", "reidkit.service.routers.media", "reidkit.service.routers.people",
               "reidkit.service.routers.meta", "reidkit.search")
    heavy = ("reidkit.store.writer", "reidkit.search.ingest", "reidkit.store.faiss_index",
             "reidkit.store.milvus_index", "faiss", "pymilvus")
    script = (
        "import importlib, json, sys\n"
        f"for name in {readers!r}: importlib.import_module(name)\n"
        f"print(json.dumps([name for name in {heavy!r} if name in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [], "loaded by reading records: " + done.stdout


def test_package_inits_load_nothing_until_asked() -> None:
    """search, video and clustering import their modules on first use (PEP 562): importing a package, or one light
    module of it, loads no decoder, detector runtime or clustering library."""
    script = (
        "import json, sys\n"
        "import reidkit.search, reidkit.video, reidkit.clustering, reidkit.video.types, reidkit.clustering.types\n"
        "print(json.dumps([m for m in ('av', 'cv2', 'openvino', 'scipy', 'sklearn', 'faiss', 'torch',"
        " 'reidkit.search.ingest', 'reidkit.video.decode', 'reidkit.clustering.cluster') if m in sys.modules]))\n"
        "from reidkit.video import ByteTracker\n"
        "from reidkit.clustering import cluster_features\n"
        "print(json.dumps(['reidkit.video.bytetrack' in sys.modules, 'reidkit.clustering.cluster' in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    first, then = done.stdout.strip().splitlines()
    assert json.loads(first) == [] and json.loads(then) == [True, True]


def test_the_album_test_and_extract_do_not_depend_on_person_search() -> None:
    """Choosing the model, its runtime and the detector lives below search (inference.model_choice,
    video.detector_choice), so grouping photos and testing or extracting with a model import nothing of it."""
    users = [*sorted((ROOT / "album").glob("*.py")), ROOT / "cli" / "train_cmd.py", ROOT / "cli" / "attributes_cmd.py"]
    wrong = [f"{path.relative_to(ROOT)}:{line}" for path in users
             for line, target in _imported_units(ast.parse(path.read_text(encoding="utf-8"))) if target == "search"]
    assert not wrong, "person search imported by: " + ", ".join(wrong)


def test_the_architecture_page_states_the_signatures_as_they_are() -> None:
    """docs/ARCHITECTURE.md names the main entry points' parameters in order; they must be the code's."""
    import dataclasses
    import inspect
    import re

    from reidkit.clustering.types import DEFAULT_METHOD, ClusterOptions
    from reidkit.search.ingest import ingest_video
    from reidkit.search.search import search_store

    text = " ".join((ROOT.parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").split())

    def stated(name: str) -> list[str]:
        found = re.search(rf"\b{name}\(([^)]*(?:\([^)]*\)[^)]*)*)\)", text)
        assert found, f"ARCHITECTURE.md states no {name}(...)"
        inner = re.sub(r"\([^)]*\)", "", found.group(1))
        return [part.split(":")[0].split("=")[0].strip() for part in inner.split(",") if part.strip()]

    for function in (ingest_video, search_store):
        parameters, named = list(inspect.signature(function).parameters), stated(function.__name__)
        assert len(named) >= 6 and named == parameters[: len(named)], (function.__name__, named)
    assert stated("ClusterOptions") == [f.name for f in dataclasses.fields(ClusterOptions)]
    assert f"default method `{DEFAULT_METHOD}`" in text
