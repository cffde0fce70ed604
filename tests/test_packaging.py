"""The wheel as a user installs it: built from the sources, installed into a fresh virtual environment, run from a
folder that is not the checkout. Catches what the editable install hides: package data left out of the wheel,
code that finds files relative to the checkout, a console script that does not start."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str | Path], cwd: Path | None = None, timeout: float = 300) -> str:
    # PYTHONPATH would put a checkout's src/ ahead of the installed wheel: the user's shell has none.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a clean copy of the sources: an in-tree build could package stale files from build/."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", dist, source])
    (wheel,) = dist.glob("reidkit-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new virtual environment holding only the wheel; its dependencies (torch and the rest, gigabytes) are this
    environment's, made visible through a .pth line rather than installed again. A plain path line adds that
    folder to sys.path after the venv's own site-packages, without running the .pth files in it (so not the
    editable install of the checkout either)."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel])
    site_packages = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    (site_packages / "reidkit_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.mark.slow
def test_the_wheel_runs_the_demo_from_any_folder(shared_dir: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("building the wheel needs pip and setuptools in this environment")
    venv = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    anywhere = tmp_path / "anywhere"
    anywhere.mkdir()

    found = _run(
        [venv / "bin" / "python", "-c",
         "import reidkit, reidkit.recipes; print(reidkit.__file__); print(reidkit.recipes.resolve_recipe('demo_cpu'))"],
        cwd=anywhere,
    )
    package, recipe = (Path(line) for line in found.split())
    assert package.is_relative_to(venv) and recipe.is_relative_to(venv), found
    listed = _run([venv / "bin" / "reidkit", "list", "recipes"], cwd=anywhere).split()
    assert "demo_cpu" in listed and "mgn_market1501" in listed

    # The user's command with its defaults (data/ and runs/demo under the current folder), shrunk to seconds.
    demo = _run(
        [venv / "bin" / "reidkit", "demo", "--shared", shared_dir.resolve(), "--subset", "12",
         "train.epochs=1", "optim.cosine_epochs=1", "data.height=64", "data.width=32", "train.progress=false"],
        cwd=anywhere,
        timeout=600,
    )
    last = json.loads(demo.strip().splitlines()[-1])
    assert set(last) == {"trained", "imagenet_only"}
    assert Path(last["trained"]["root"]).is_relative_to(anywhere / "data")
    out = anywhere / "runs" / "demo"
    for name in ("mgn_demo.pt", "results.json", "ranked_lists_trained.png", "ranked_lists_imagenet_only.png",
                 "activation_maps_trained.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text())["trained"] == last["trained"]
    # The run trained with the packaged recipe: its saved config holds the recipe's (non-default) loss settings.
    used, shipped = (yaml.safe_load(path.read_text()) for path in (out / "train" / "config.yaml", recipe))
    assert {key: used["loss"][key] for key in shipped["loss"]} == shipped["loss"]

    # The person detector ships too (issue 28): its IR, licence and card are package data of the installed wheel,
    # and with no shared/ folder in sight it is the default detector's model.
    shipped_detector = _run([venv / "bin" / "python", "-c", "import os; from reidkit.video.detectors.openvino_ssd "
                             "import DETECTOR_ENV_VAR, _PACKAGED_MODEL as m, default_openvino_model as d; "
                             "os.environ.pop(DETECTOR_ENV_VAR, None); print(m); "
                             "print(*(sorted(p.name for p in m.parent.iterdir()))); print(d() == m)"],
                            cwd=anywhere).splitlines()
    assert Path(shipped_detector[0]).is_relative_to(venv) and shipped_detector[2] == "True"
    assert shipped_detector[1].split() == ["LICENSE", "MODEL_CARD.md", "person-detection-retail-0013.bin",
                                           "person-detection-retail-0013.xml"]

    # The shipped model is inside the wheel: listed, and the default of a command that embeds, with no checkout.
    models = _run([venv / "bin" / "reidkit", "list", "models"], cwd=anywhere)
    assert "*market1501_mgn_mobilenetv2" in models
    crop = next((anywhere / "data" / "Market-1501-v15.09.15" / "query").glob("*.jpg"))
    _run([venv / "bin" / "reidkit", "extract", crop, "--out", anywhere / "f.npz", "--device", "cpu"], cwd=anywhere)
    with np.load(anywhere / "f.npz") as saved:
        assert saved["features"].shape == (1, 2048) and np.isfinite(saved["features"]).all()
