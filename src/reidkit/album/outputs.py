"""What a clustering leaves on disk, written out of sight and published with one rename.

``DIR/clusters.json``  {"items": [{"path", "box", "cluster", "confidence"}], "params": {...}, "summary": {...}}
``DIR/people/person_007/``  symbolic links to the files each person was found in (``people/unclustered/`` too)
``DIR/thumbs/``  one small JPEG per item, which the sheet and the overview show
``DIR/contact_sheet.html``  one row of thumbnails per person, largest first
``DIR/overview.png``  the largest people at a glance (matplotlib)

``OutputStaging`` builds all of it in a scratch folder beside ``DIR``; ``publish`` swaps it in by renames, so a
reader never sees half a result. An existing ``DIR`` is replaced only when it holds a previous result
(its ``clusters.json``) or nothing: a user's own folder is never emptied.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reidkit.clustering import UNCLUSTERED, ClusterResult
from reidkit.errors import ConfigError

RESULT_FILE = "clusters.json"
THUMB_HEIGHT = 96
# The overview shows this many people, each with up to this many thumbnails; the sheet shows everyone.
OVERVIEW_PEOPLE, OVERVIEW_PER_PERSON = 24, 12


@dataclass(frozen=True)
class OutputItem:
    """One person sighting: the file it was found in (what its link points to), its box there (None for a crop)."""

    path: Path
    box: tuple[float, float, float, float] | None = None


class OutputStaging:
    """The result folder under construction: ``thumbnail`` as items are read, ``publish`` once clustered."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        _check_replaceable(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".partial", dir=self.out.parent))
        os.chmod(self.scratch, 0o755)  # mkdtemp makes it private; the published result is meant to be shared
        (self.scratch / "thumbs").mkdir()

    def thumbnail(self, index: int, crop: np.ndarray) -> None:
        """Item ``index``'s thumbnail from its RGB crop (HxWx3 uint8)."""
        image = Image.fromarray(crop)
        width = max(1, round(image.width * THUMB_HEIGHT / max(image.height, 1)))
        image.resize((width, THUMB_HEIGHT)).save(self.scratch / "thumbs" / _thumb_name(index), quality=85)

    def publish(self, items: Sequence[OutputItem], result: ClusterResult, params: dict[str, Any]) -> Path:
        """Write clusters.json, the links, the sheet and the overview, then put the folder in place of ``out``."""
        if len(items) != result.labels.size:
            raise ValueError(f"{len(items)} items but {result.labels.size} labels")
        folder = self.scratch
        _write_json(folder / RESULT_FILE, _result_json(items, result, params))
        _write_links(folder / "people", items, result.labels)
        groups = _people_by_size(result.labels)
        (folder / "contact_sheet.html").write_text(_contact_sheet(items, result, groups, params), encoding="utf-8")
        _overview(folder / "overview.png", result, groups)
        _swap_in(folder, self.out)
        return self.out

    def discard(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> OutputStaging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()  # after publish the scratch folder is gone already; after a failure it is cleared up


def person_folder(label: int) -> str:
    return "unclustered" if label == UNCLUSTERED else f"person_{label:03d}"


def _thumb_name(index: int) -> str:
    return f"{index:06d}.jpg"


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the clustering result")
    if out.is_dir() and any(out.iterdir()) and not (out / RESULT_FILE).is_file():
        raise ConfigError(f"--out {out} is a folder with other files in it; give a new or empty folder")


def _result_json(items: Sequence[OutputItem], result: ClusterResult, params: dict[str, Any]) -> dict[str, Any]:
    rows = [
        {
            "path": str(item.path),
            "box": None if item.box is None else [round(float(v), 1) for v in item.box],
            "cluster": int(label),
            "confidence": round(float(conf), 4),
        }
        for item, label, conf in zip(items, result.labels, result.confidence, strict=True)
    ]
    summary = {"items": len(rows), "people": result.num_clusters, "unclustered": result.num_unclustered}
    return {"items": rows, "params": {**params, **result.params}, "summary": summary}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def _write_links(root: Path, items: Sequence[OutputItem], labels: np.ndarray) -> None:
    """people/<person>/<index>_<name> -> the absolute path of the file, so the folder works wherever it is moved."""
    for index, (item, label) in enumerate(zip(items, labels, strict=True)):
        folder = root / person_folder(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(item.path).resolve(), folder / f"{index:06d}_{Path(item.path).name}")
    root.mkdir(exist_ok=True)


def _people_by_size(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, item indices) of each person, largest first; the unclustered last."""
    people = [(int(c), np.flatnonzero(labels == c)) for c in np.unique(labels) if c != UNCLUSTERED]
    people.sort(key=lambda entry: (-entry[1].size, entry[0]))
    noise = np.flatnonzero(labels == UNCLUSTERED)
    return people + ([(UNCLUSTERED, noise)] if noise.size else [])


def _contact_sheet(
    items: Sequence[OutputItem], result: ClusterResult, groups: list[tuple[int, np.ndarray]], params: dict[str, Any]
) -> str:
    rows = []
    for label, members in groups:
        title = "unclustered" if label == UNCLUSTERED else f"person {label}"
        cells = "".join(
            f'<img src="thumbs/{_thumb_name(int(i))}" title="{html.escape(str(items[i].path))} '
            f'(confidence {result.confidence[i]:.2f})" loading="lazy">'
            for i in members
        )
        rows.append(f'<section><h2>{title} <small>{members.size} sightings, '
                    f'<a href="people/{person_folder(label)}/">links</a></small></h2><div>{cells}</div></section>')
    method = html.escape(str(result.params.get("method", "")))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Who is who</title><style>"
        "body{font-family:sans-serif;margin:1em}h2{font-size:1em;margin:.8em 0 .2em}small{color:#666}"
        f"img{{height:{THUMB_HEIGHT}px;margin:1px}}</style></head><body>"
        f"<h1>Who is who: {result.num_clusters} people, {result.num_unclustered} unclustered "
        f"of {len(items)} sightings</h1><p>method {method}; clusters.json holds every parameter "
        f"({html.escape(json.dumps({k: v for k, v in params.items() if k != 'inputs'}))})</p>"
        + "".join(rows) + "</body></html>"
    )


def _overview(path: Path, result: ClusterResult, groups: list[tuple[int, np.ndarray]]) -> None:
    """A grid: one row per person (the largest ``OVERVIEW_PEOPLE``), up to ``OVERVIEW_PER_PERSON`` thumbnails."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    shown = [(label, members) for label, members in groups if label != UNCLUSTERED][:OVERVIEW_PEOPLE]
    rows = max(1, len(shown))
    figure = Figure(figsize=(OVERVIEW_PER_PERSON * 0.7 + 1.2, rows * 1.3 + 0.6))
    figure.suptitle(f"{result.num_clusters} people ({len(shown)} largest shown), {result.num_unclustered} unclustered")
    axes = figure.subplots(rows, OVERVIEW_PER_PERSON, squeeze=False)
    for row in axes:
        for axis in row:
            axis.axis("off")
    for r, (label, members) in enumerate(shown):
        axes[r][0].set_title(f"person {label}: {members.size}", fontsize=7, loc="left")
        for c, index in enumerate(members[:OVERVIEW_PER_PERSON]):
            with Image.open(path.parent / "thumbs" / _thumb_name(int(index))) as thumb:
                axes[r][c].imshow(np.asarray(thumb.convert("RGB")))
    figure.savefig(path, dpi=80)


def _swap_in(built: Path, out: Path) -> None:
    """``built`` becomes ``out``: a rename when ``out`` is absent, else old aside, new in, old removed."""
    if not out.exists():
        os.rename(built, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    os.rename(built, out)
    shutil.rmtree(old, ignore_errors=True)
