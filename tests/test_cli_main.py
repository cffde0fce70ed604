"""The ``reidkit`` command as a user meets it: every stage's commands are there, and mistakes are one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REIDKIT = shutil.which("reidkit") or str(Path(sys.executable).with_name("reidkit"))
COMMANDS = (
    "eval-features", "train", "test", "extract", "demo", "ingest", "search", "demo-video", "cluster", "people", "purge",
    "serve", "token", "list", "attributes", "watch", "watchlist", "zones",
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REIDKIT, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_stage_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout, command


def test_usage_error_exits_2_without_traceback() -> None:
    result = run("eval-features", "--query", "q.npz")
    assert result.returncode == 2
    assert "--gallery" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("eval-features", "--query", "missing-q.npz", "--gallery", "missing-g.npz"), "missing-q.npz"),
        (("extract", "--checkpoint", "missing.pt", "img.jpg", "--out", "f.npz"), "img.jpg"),
    ],
)
def test_user_errors_are_one_line_naming_the_file(args: tuple[str, ...], named: str, tmp_path: Path) -> None:
    result = subprocess.run([REIDKIT, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and named in lines[0]


def test_list_shows_every_registry_and_the_shipped_recipes() -> None:
    from reidkit.models import MODELS
    from reidkit.recipes import recipe_names

    result = run("list")
    assert result.returncode == 0, result.stderr
    sections = {}
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        else:
            current.append(line.split()[0])
    trained = ("trained models (shipped with reidkit, --checkpoint NAME; * = the default of every command that embeds,"
               " a = of `reidkit attributes`)")
    assert list(sections) == [
        "models", trained, "backbones", "datasets", "detectors", "backends", "indexes", "clustering", "recipes"
    ]
    assert sections[trained] == ["*market1501_mgn_mobilenetv2", "amarket1501_attributes_mobilenetv2"]
    assert sections["clustering"] == ["dbscan-jaccard", "agglomerative-jaccard", "hdbscan"]
    assert sections["models"] == list(MODELS.names())
    assert sections["recipes"] == recipe_names() and "demo_cpu" in sections["recipes"]
    one = run("list", "detectors")
    assert one.returncode == 0 and one.stdout.splitlines()[0] == "detectors:"
    assert [line.split()[0] for line in one.stdout.splitlines()[1:]] == sections["detectors"]
    wrong = run("list", "gizmos")
    assert wrong.returncode == 2 and "gizmos" in wrong.stderr and "Traceback" not in wrong.stderr
