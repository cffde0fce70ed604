"""Start-up cost: commands that never touch a model must not import torch (seconds) to run.

Each probe is a fresh interpreter that runs the real ``reidkit`` entry point in-process, step by step, and
reports which heavy modules were loaded after each step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from reidkit.evaluation import save_features
from reidkit.store.reader import StoreReader

HEAVY = ("torch", "torchvision", "scipy")
PROBE = """
import json, sys
from reidkit.cli.main import main
loaded = {"import": [name for name in HEAVY if name in sys.modules]}
for label, argv in STEPS:
    sys.argv = ["reidkit", *argv]
    try:
        main()
    except SystemExit as done:
        assert done.code in (0, None), (argv, done.code)
    loaded[label] = [name for name in HEAVY if name in sys.modules]
print(json.dumps(loaded))
"""


def _loaded_after(steps: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    code = f"HEAVY = {HEAVY!r}\nSTEPS = {steps!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_eval_features_never_import_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pids, cams = np.repeat(np.arange(1, 6), 4), np.tile([0, 1, 2, 3], 5)
    query = save_features(tmp_path / "q.npz", rng.standard_normal((20, 16)), pids, cams)
    gallery = save_features(tmp_path / "g.npz", rng.standard_normal((20, 16)), pids, (cams + 1) % 4)
    files = ["--query", str(query), "--gallery", str(gallery), "--json"]
    loaded = _loaded_after(
        [("help", ["--help"]), ("eval", ["eval-features", *files]), ("rerank", ["eval-features", *files, "--rerank"])]
    )
    # SciPy is re-ranking's alone: plain evaluation does not wait for it either.
    assert loaded == {"import": [], "help": [], "eval": [], "rerank": ["scipy"]}


def test_a_photo_search_once_its_model_ir_is_cached_never_imports_torch(attribute_store: Path) -> None:
    """``reidkit search PHOTO --db STORE`` embeds its crop with the store model's cached OpenVINO IR (issue 24):
    the first search of a model leaves the IR (it may load torch to make it); every later one loads no torch."""
    with StoreReader.open(attribute_store) as store:
        crop = max(store.track_detections(int(store.track_ids()[0])), key=lambda row: row.quality)
        photo = store.crop_file(crop)
    search = ["search", str(photo), "--db", str(attribute_store), "--top-k", "5"]
    _loaded_after([("first", search)])
    loaded = _loaded_after([("search", search), ("json", [*search, "--json"])])
    assert loaded == {"import": [], "search": [], "json": []}
