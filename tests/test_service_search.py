"""Search through the service on a store ingested from the shared video: the same hits as ``reidkit search --json``,
the links each hit carries, the audit trail, filters, and a server that sees an ingest made while it runs."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reidkit.service import audit
from reidkit.service.access import Role, create_token
from reidkit.service.settings import ServiceSettings
from reidkit.store.writer import Store

REIDKIT = Path(sys.executable).with_name("reidkit")
API = "/api/v1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(small_store: Path, serve: Callable[..., str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """The server on the small store, with a viewer's and an admin's headers. It embeds with PyTorch, as
    ``reidkit search`` does, so that its hits can be compared with the CLI's exactly (near-ties included)."""
    url = serve(small_store, ServiceSettings(requests_per_minute=10_000, embed_backend="torch"))
    viewer, admin = (create_token(small_store, role, role.name)[1] for role in (Role.viewer, Role.admin))
    return url, {"Authorization": f"Bearer {viewer}"}, {"Authorization": f"Bearer {admin}"}


def longest_track_crop(root: Path) -> tuple[int, Path]:
    with Store.open(root) as store:
        (track_id,) = store.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
        return track_id, root / store.track_detections(track_id)[2].crop_path


def ranking(payload: dict) -> list[tuple[int, int, float, str | None]]:
    return [(h["track_id"], h["detection_id"], h["score"], h["time"]) for h in payload["hits"]]


def test_a_search_gives_the_cli_hits_and_links_that_work(small_store: Path, service: tuple) -> None:
    url, viewer, admin = service
    track_id, crop = longest_track_crop(small_store)
    cli = subprocess.run([str(REIDKIT), "search", str(crop), "--db", str(small_store), "--top-k", "5", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    with httpx.Client(base_url=url, timeout=120) as client:
        found = client.post(f"{API}/search", headers=viewer, data={"top_k": "5"},
                            files={"image": (crop.name, crop.read_bytes(), "image/jpeg")})
        assert found.status_code == 200, found.text
        payload = found.json()
        assert ranking(payload) == ranking(expected) and len(payload["hits"]) == 5
        assert payload["trajectory"] == expected["trajectory"]
        assert payload["hits"][0]["track_id"] == track_id and payload["query"]["kind"] == "crop"
        assert str(small_store) not in found.text  # links, not the server's paths

        top = payload["hits"][0]
        assert client.get(top["crop_url"], headers=viewer).content == (small_store / _crop_path(small_store, top))\
            .read_bytes()
        frame = client.get(top["frame_url"], headers=viewer)
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        drawn = Image.open(io.BytesIO(frame.content))
        assert drawn.size == (768, 576)
        x0, y0, x1, _ = (round(v) for v in top["box"])
        red, green, _blue = drawn.convert("RGB").getpixel((min(x0 + 1, 767), (y0 + top["box"][3]) // 2))
        assert red > 150 and green < 120  # the box is drawn where the hit is
        track = client.get(top["track_url"], headers=viewer).json()
        assert track["track"]["id"] == track_id and len(track["detections"]) == track["track"]["num_crops"]
        assert top["detection_id"] in [d["id"] for d in track["detections"]]

        log = client.get(f"{API}/audit", headers=admin, params={"limit": 10}).json()["entries"]
    actions = {entry["action"]: entry for entry in log}
    assert actions["search"]["hits"] == 5 and crop.name in actions["search"]["target"]
    assert actions["frame"]["target"].startswith(f"detection {top['detection_id']} (camera 'cam1'")
    assert actions["track"]["hits"] == track["track"]["num_crops"]


def test_the_default_openvino_embedding_gives_the_same_top_hits(
    small_store: Path, service: tuple, serve: Callable[..., str]
) -> None:
    """``reidkit serve`` embeds with OpenVINO by default (``auto``): features equal to PyTorch's to 1e-4, so the
    same hits in the same order, scores within 1e-3 (only near-ties could swap)."""
    pytest.importorskip("openvino")
    url, viewer, _ = service
    fast = serve(small_store, ServiceSettings(requests_per_minute=10_000, embed_backend="openvino"))
    with Store.open(small_store) as store:
        crops = [small_store / row[0] for row in store.db.execute("SELECT crop_path FROM detections ORDER BY id")]
    for crop in crops[:: max(1, len(crops) // 4)]:
        torch_hits, openvino_hits = (
            httpx.post(f"{base}{API}/search", headers=viewer, data={"top_k": "5"}, timeout=120,
                       files={"image": (crop.name, crop.read_bytes(), "image/jpeg")}).json()["hits"]
            for base in (url, fast)
        )
        assert [h["track_id"] for h in openvino_hits] == [h["track_id"] for h in torch_hits]
        for one, other in zip(openvino_hits, torch_hits, strict=True):
            assert abs(one["score"] - other["score"]) < 1e-3


def _crop_path(root: Path, hit: dict) -> str:
    with Store.open(root) as store:
        return store.detections([hit["detection_id"]])[hit["detection_id"]].crop_path


def test_search_by_track_filters_and_refusals(small_store: Path, service: tuple) -> None:
    url, viewer, _ = service
    track_id, _crop = longest_track_crop(small_store)
    cli = subprocess.run([str(REIDKIT), "search", "--track", str(track_id), "--db", str(small_store), "--top-k", "3",
                          "--json"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    with httpx.Client(base_url=url, timeout=120) as client:
        by_track = client.post(f"{API}/search/track/{track_id}", headers=viewer, data={"top_k": "3"})
        assert by_track.status_code == 200, by_track.text
        assert ranking(by_track.json()) == ranking(json.loads(cli.stdout))
        assert track_id not in [hit["track_id"] for hit in by_track.json()["hits"]]

        late = client.post(f"{API}/search/track/{track_id}", headers=viewer,
                           data={"camera": "cam1", "after": "2024-05-01T09:00:04"})
        assert late.status_code == 200
        times = [datetime.fromisoformat(hit["time"]) for hit in late.json()["hits"]]
        assert times and min(times) >= datetime(2024, 5, 1, 9, 0, 4)

        refusals = {
            "camera": client.post(f"{API}/search/track/{track_id}", headers=viewer, data={"camera": "lobby<script>"}),
            "order": client.post(f"{API}/search/track/{track_id}", headers=viewer,
                                 data={"after": "2024-05-02", "before": "2024-05-01"}),
            "track": client.post(f"{API}/search/track/999999", headers=viewer),
            "box": client.post(f"{API}/search", headers=viewer, data={"box": "5000,5000,5100,5200"},
                               files={"image": ("f.jpg", _frame_jpeg(), "image/jpeg")}),
        }
    codes = {name: (r.status_code, r.json()["error"]["message"]) for name, r in refusals.items()}
    assert codes["camera"][0] == 400 and "'lobby<script>'" in codes["camera"][1]
    assert str(small_store) not in codes["camera"][1] and "'cam1'" in codes["camera"][1]
    assert codes["order"][0] == 400 and "later than" in codes["order"][1]
    assert codes["track"] == (404, "no track 999999; take a track id from an earlier search")
    assert codes["box"][0] == 400 and "lies outside" in codes["box"][1]
    assert codes["order"][1].startswith("after ") and "before 2024-05-01" in codes["order"][1]
    assert not any("--" in message for _, message in codes.values())


def test_a_box_partly_outside_the_photo_is_refused_and_a_long_file_name_keeps_the_audit_entry_whole(
    small_store: Path, service: tuple
) -> None:
    url, viewer, _ = service
    _, crop = longest_track_crop(small_store)
    name = "n" * 600 + ".jpg"
    with httpx.Client(base_url=url, timeout=120) as client:
        for box in ("300,10,330,100", "-5,10,100,100", "10,10,100,241"):
            partly = client.post(f"{API}/search", headers=viewer, data={"box": box},
                                 files={"image": ("f.jpg", _frame_jpeg(), "image/jpeg")})
            message = partly.json()["error"]["message"]
            assert partly.status_code == 400 and message.startswith("box ") and "inside" in message, box
        found = client.post(f"{API}/search", headers=viewer, files={"image": (name, crop.read_bytes(), "image/jpeg")},
                            data={"top_k": "4", "camera": ["cam1", "cam1"], "after": "2024-05-01T09:00:00",
                                  "before": "2024-05-01T10:00:00", "rerank": "true"})
        assert found.status_code == 200, found.text
    entry = next(e for e in audit.read(small_store) if e.action == "search")
    assert entry.target.startswith(f"image {'n' * 120!r}... (604 characters) (crop)")
    assert entry.target.endswith(" camera='cam1' after=2024-05-01T09:00:00 before=2024-05-01T10:00:00 top_k=4 rerank")
    assert entry.hits == len(found.json()["hits"])


def _frame_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 40, 40)).save(out, format="JPEG")
    return out.getvalue()


def test_the_server_sees_an_ingest_made_while_it_runs(
    small_store: Path, vtest_video: Path, shared_dir: Path, tmp_path: Path, serve: Callable[..., str]
) -> None:
    """Another process's ingest (here: the same code in this one) commits; the next request sees its rows."""
    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.video import probe_video

    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    url = serve(root)
    headers = {"Authorization": f"Bearer {create_token(root, Role.viewer, 'live')[1]}"}
    with httpx.Client(base_url=url, timeout=120) as client:
        before = client.get(f"{API}/health", headers=headers).json()["counts"]
        track_id, _ = longest_track_crop(root)
        assert client.post(f"{API}/search/track/{track_id}", headers=headers, data={"camera": "cam2"}).status_code \
            == 400
        detector = choose_detector(None, openvino_model=shared_dir / "models" / "person-detection-retail-0013"
                                   / "person-detection-retail-0013.xml")
        model = choose_model("imagenet", None)
        options = IngestOptions("cam2", datetime(2024, 5, 1, 10, 0, 0), every_n=2, start_frame=100, end_frame=130,
                                progress=False)
        with Store.open(root, writable=True) as store:
            ingest_video(store, probe_video(vtest_video), options, model.extractor, detector, model.source)
        after = client.get(f"{API}/health", headers=headers).json()["counts"]
        assert after["videos"] == before["videos"] + 1 and after["detections"] > before["detections"]
        found = client.post(f"{API}/search/track/{track_id}", headers=headers, data={"camera": "cam2", "top_k": "3"})
        assert found.status_code == 200, found.text
        assert found.json()["hits"] and {hit["camera"] for hit in found.json()["hits"]} == {"cam2"}
        cameras = client.get(f"{API}/cameras", headers=headers).json()["cameras"]
    assert [camera["name"] for camera in cameras] == ["cam1", "cam2"]
    assert [entry.action for entry in audit.read(root)][0] == "search.track"
