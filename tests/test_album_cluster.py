"""``reidkit cluster``: real crops of the shared benchmark and real scene photos (frames of the shared video), the
ImageNet-initialised MGN-MobileNetV2 as embedder, the result folder as a user finds it, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidkit.album import AlbumOptions, cluster_album, read_rgb
from reidkit.clustering import UNCLUSTERED, ClusterOptions, cluster_features, score_clusters
from reidkit.errors import ConfigError, ImageError

REIDKIT = Path(sys.executable).with_name("reidkit")
pytestmark = pytest.mark.slow


def reidkit(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REIDKIT), *map(str, args)], capture_output=True, text=True, timeout=400)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def subset(cuhk03_dataset):
    """The test-split crops of 24 identities (both cameras), in file order."""
    records = [*cuhk03_dataset.query, *cuhk03_dataset.gallery]
    chosen = sorted({r.pid for r in records})[:24]
    return sorted((r for r in records if r.pid in chosen), key=lambda r: str(r.path))


@pytest.fixture(scope="module")
def imagenet_features(subset):
    from reidkit.inference.model_choice import choose_model

    return choose_model("imagenet", None).extractor([r.path for r in subset])


def test_real_crops_cluster_better_than_the_trivial_answers(subset, imagenet_features) -> None:
    pids = np.array([r.pid for r in subset])
    cams = np.array([r.camid for r in subset])
    singletons = score_clusters(np.arange(pids.size), pids, cams)
    one = score_clusters(np.zeros(pids.size, dtype=np.int64), pids, cams)
    for method in ("agglomerative-jaccard", "dbscan-jaccard", "hdbscan"):
        result = cluster_features(imagenet_features, ClusterOptions(method=method), cameras=cams.tolist())
        scores = score_clusters(result.labels, pids, cams)
        assert scores.f1 > max(singletons.f1, one.f1) + 0.1, (method, scores)
        assert scores.ari > 0.1 and scores.precision > 0.3, (method, scores)


@pytest.fixture
def crop_folder(subset, tmp_path: Path) -> Path:
    """Crops of 6 identities copied into a user's folder."""
    folder = tmp_path / "crops"
    folder.mkdir()
    pids = sorted({r.pid for r in subset})[:6]
    for record in subset:
        if record.pid in pids:
            shutil.copy(record.path, folder / Path(record.path).name)
    return folder


def test_the_result_folder_holds_what_the_issue_promises(crop_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "who"
    report = cluster_album([crop_folder], out, AlbumOptions(crops=True, checkpoint="imagenet"))
    payload = json.loads((out / "clusters.json").read_text())
    files = sorted(crop_folder.iterdir())
    assert len(payload["items"]) == len(files) == report.sightings
    assert {Path(item["path"]).name for item in payload["items"]} == {f.name for f in files}
    for item in payload["items"]:
        assert set(item) == {"path", "box", "cluster", "confidence"} and item["box"] is None
        assert item["cluster"] >= UNCLUSTERED and 0.0 <= item["confidence"] <= 1.0
    assert payload["params"]["method"] == "agglomerative-jaccard" and payload["params"]["linkage_cut"] == 0.65
    clusters = {item["cluster"] for item in payload["items"]} - {UNCLUSTERED}
    assert len(clusters) == report.people >= 1
    for cluster in clusters:
        links = sorted((out / "people" / f"person_{cluster:03d}").iterdir())
        members = {Path(i["path"]).name for i in payload["items"] if i["cluster"] == cluster}
        assert all(link.is_symlink() and link.resolve().parent == crop_folder.resolve() for link in links)
        assert {link.resolve().name for link in links} == members
    sheet = (out / "contact_sheet.html").read_text()
    assert sheet.count("<img") == len(files) and "person 0" in sheet
    assert all((out / src).is_file() for src in _sources(sheet))
    with Image.open(out / "overview.png") as png:
        assert png.format == "PNG" and png.width > 200
    # A second run replaces the first whole, and leaves no scratch folder behind.
    cluster_album([crop_folder], out, AlbumOptions(crops=True, checkpoint="imagenet", cluster=ClusterOptions("hdbscan")))
    assert json.loads((out / "clusters.json").read_text())["params"]["method"] == "hdbscan"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # A folder of the user's own files is never emptied.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="other files in it"):
        cluster_album([crop_folder], mine, AlbumOptions(crops=True, checkpoint="imagenet"))


def _sources(sheet: str) -> list[str]:
    return [part.split('"', 1)[0] for part in sheet.split('src="')[1:]]


def test_scene_photos_go_through_the_detector_and_one_photo_holds_different_people(
    vtest_video: Path, tmp_path: Path
) -> None:
    from reidkit.video import iter_frames

    photos = tmp_path / "photos"
    photos.mkdir()
    for frame in iter_frames(vtest_video, every_n=40, end_frame=200):
        Image.fromarray(frame.image).save(photos / f"scene_{frame.index:03d}.jpg", quality=90)
    out = tmp_path / "out"
    report = cluster_album([photos], out, AlbumOptions(checkpoint="imagenet", detector="openvino"))
    items = json.loads((out / "clusters.json").read_text())["items"]
    assert report.images == 5 and len(items) == report.sightings > 5  # several people per scene
    for item in items:
        x0, y0, x1, y1 = item["box"]
        assert 0 <= x0 < x1 <= 768 and 0 <= y0 < y1 <= 576
    for photo in {item["path"] for item in items}:
        labels = [i["cluster"] for i in items if i["path"] == photo and i["cluster"] != UNCLUSTERED]
        assert len(labels) == len(set(labels)), photo  # cannot-link: never two people of one photo in one cluster
    assert json.loads((out / "clusters.json").read_text())["params"]["cannot_link_pairs"] > 0


def test_the_command_end_to_end_on_crops(crop_folder: Path, tmp_path: Path) -> None:
    result = reidkit("cluster", crop_folder, "--crops", "--out", tmp_path / "o", "--checkpoint", "imagenet")
    assert result.returncode == 0, result.stderr
    assert "people among" in result.stdout and (tmp_path / "o" / "clusters.json").is_file()


def test_camera_aware_on_a_folder_per_camera(subset, tmp_path: Path) -> None:
    """``--camera-aware`` reads each crop's folder as its camera: crops in cam1/ and cam2/ are clustered with
    camera-aware neighbourhoods (the params say so); from one folder it warns and uses each one's k1 nearest."""
    cameras = tmp_path / "by_camera"
    pids = sorted({r.pid for r in subset})[:8]
    for record in subset:
        if record.pid in pids:
            folder = cameras / f"cam{record.camid}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(record.path, folder / Path(record.path).name)
    assert len(list(cameras.iterdir())) == 2
    out = tmp_path / "o"
    result = reidkit("cluster", cameras, "--crops", "--camera-aware", "--k-intra", "2", "--k-inter", "4",
                     "--out", out, "--checkpoint", "imagenet")
    assert result.returncode == 0, result.stderr
    params = json.loads((out / "clusters.json").read_text())["params"]
    assert (params["camera_aware"], params["k_intra"], params["k_inter"]) == (True, 2, 4) and "k1" not in params
    one = reidkit("cluster", cameras / "cam1", "--crops", "--camera-aware", "--out", tmp_path / "one",
                  "--checkpoint", "imagenet")
    assert one.returncode == 0, one.stderr
    assert "--camera-aware needs people from two camera folders" in one.stderr
    assert json.loads((tmp_path / "one" / "clusters.json").read_text())["params"]["camera_aware"] is False


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in error_line(reidkit("cluster", empty, "--crops", "--out", tmp_path / "o"))
    assert "--eps 'wide'" in error_line(reidkit("cluster", empty, "--eps", "wide", "--out", tmp_path / "o"))
    assert "--whiten must be a number of components" in error_line(
        reidkit("cluster", empty, "--whiten", "-3", "--out", tmp_path / "o")
    )
    assert "--k-inter must be a positive integer" in error_line(
        reidkit("cluster", empty, "--camera-aware", "--k-inter", "0", "--out", tmp_path / "o")
    )
    assert "--camera-aware applies to the Jaccard methods" in error_line(
        reidkit("cluster", empty, "--camera-aware", "--method", "hdbscan", "--out", tmp_path / "o")
    )
    assert "unknown clustering method 'kmeans'" in error_line(
        reidkit("cluster", empty, "--method", "kmeans", "--out", tmp_path / "o")
    )
    assert "missing.jpg does not exist" in error_line(reidkit("cluster", tmp_path / "missing.jpg", "--out", tmp_path))
    broken = empty / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    assert "broken.jpg cannot be read as an image" in error_line(reidkit("cluster", empty, "--out", tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    # A file whose header reads but whose pixels are cut off fails when it is decoded, in one line too.
    truncated = tmp_path / "truncated.jpg"
    Image.new("RGB", (64, 128), "red").save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ImageError, match="truncated.jpg cannot be read as an image"):
        read_rgb(truncated)
