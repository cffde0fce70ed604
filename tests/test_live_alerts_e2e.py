"""Issue 29's test of the watch list, end to end: the walker of the shared video is enrolled (over the API) from his
camera-A track, camera B is then streamed over RTSP (the tests' loopback server, at the footage's real rate) to
``reidkit watch``, and exactly one alert comes, for him, naming one of his camera-B tracks: on the web page
(Chromium, following the alerts stream) with its crop and camera, and at two webhooks on 127.0.0.1 that check the
HMAC signature, one of which fails its first delivery and gets the retry (both attempts recorded).

Who the walker is comes from the video itself (``demos.video_demo.walkers_across_cut``: one tracker run across the
cut between the halves); his camera-B tracks in the live session are the live tracks whose boxes match that
walker's boxes in the same frames. The shipped model and the default threshold and cool-down are used, as a
deployment would.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import cut_clip  # tests/ is on sys.path (rootdir conftest)
from live_rtsp import RtspServer, rtsp_server_fixture, wait_for  # noqa: F401 - the rtsp_server fixture
from test_live_alerts import Receiver
from test_service_web import Session

from reidkit.live.webhooks import attempts
from reidkit.service.access import Role, create_token
from reidkit.service.settings import ServiceSettings
from reidkit.store.layout import DB_NAME
from reidkit.store.reader import StoreReader
from reidkit.video.bytetrack import iou_matrix

pytestmark = [pytest.mark.slow, pytest.mark.browser]
API = "/api/v1"
WINDOW = 100  # frames each side of the cut (video_demo.WINDOW_FRAMES)
EVERY = 2


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path, shared_dir: Path) -> dict[str, Any]:
    """A store holding the ten seconds before the cut as camera ``cam-a`` and the ten after as ``cam-b-file`` (the
    walker's ground truth), the shipped model; the ten seconds after the cut as an MP4 for the live camera."""
    from reidkit.demos.video_demo import walkers_across_cut
    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    folder = tmp_path_factory.mktemp("alerts-e2e")
    root = folder / "store"
    info = probe_video(vtest_video)
    cut = info.num_frames // 2
    detector = choose_detector(None, openvino_model=shared_dir / "models" / "person-detection-retail-0013"
                               / "person-detection-retail-0013.xml")
    choice = choose_model(None, None, backend="auto")
    with Store.open(root, writable=True, create=True) as store:
        ids = []
        for camera, first, end in (("cam-a", cut - WINDOW, cut), ("cam-b-file", cut, cut + WINDOW)):
            options = IngestOptions(camera, datetime(2024, 5, 1, 9, 0, 0), EVERY, first, end, progress=False)
            ids.append(ingest_video(store, info, options, choice.extractor, detector, choice.source).video_id)
        walker = max(walkers_across_cut(store, ids[0], ids[1], detector), key=lambda w: w.evidence)
        boxes_b = {(r.frame_index - cut, tuple(r.box)) for t in walker.tracks_b for r in store.track_detections(t)}
    return {"root": root, "clip": cut_clip(vtest_video, folder / "cam-b.mp4", cut, WINDOW), "walker": walker,
            "boxes_b": boxes_b}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


def walker_live_tracks(root: Path, camera: str, boxes: set[tuple[int, tuple[float, ...]]]) -> set[int]:
    """The live tracks of ``camera`` with a box on the walker (IoU >= 0.5 with his box in the same frame)."""
    by_frame: dict[int, list[tuple[float, ...]]] = {}
    for frame, box in boxes:
        by_frame.setdefault(frame, []).append(box)
    found: set[int] = set()
    with StoreReader.open(root) as store:
        rows = store.db.execute(
            "SELECT d.track_id, d.frame_index, d.x0, d.y0, d.x1, d.y1 FROM detections d JOIN videos v ON "
            "v.id = d.video_id JOIN cameras c ON c.id = v.camera_id WHERE c.name = ?", (camera,)).fetchall()
    for track_id, frame, *box in rows:
        if frame in by_frame and iou_matrix(np.array([box]), np.array(by_frame[frame])).max() >= 0.5:
            found.add(int(track_id))
    return found


def _stream_done(root: Path, camera: str) -> bool:
    """Whether the camera's live session has ended (its stream reached its end), as another process reads it."""
    with closing(sqlite3.connect(f"file:{root / DB_NAME}?mode=ro", uri=True, timeout=5)) as connection:
        return connection.execute(
            "SELECT COUNT(*) FROM videos v JOIN cameras c ON c.id = v.camera_id WHERE c.name = ? AND "
            "v.status = 'done'", (camera,)).fetchone()[0] > 0


def test_the_walker_enrolled_from_camera_a_alerts_once_when_camera_b_streams(
    scene: dict[str, Any], serve: Callable[..., str], browser: Any, tmp_path: Path,
    rtsp_server: Callable[[Path], RtspServer]
) -> None:
    root, walker = scene["root"], scene["walker"]
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    tokens = {role: {"Authorization": f"Bearer {create_token(root, role, f'e2e {role.name}')[1]}"} for role in Role}
    receiver = Receiver({})
    query_track = max(walker.tracks_a, key=lambda t: walker.tracks_a[t])
    with httpx.Client(base_url=url, timeout=120) as client:
        enrolled = client.post(f"{API}/watchlist/track/{query_track}", headers=tokens[Role.operator],
                               data={"name": "The walker", "note": "camera A, before the cut"})
        assert enrolled.status_code == 200, enrolled.text
        for path in ("/ok", "/flaky"):
            made = client.post(f"{API}/webhooks", headers=tokens[Role.admin], json={"url": receiver.url + path})
            receiver.secrets[path] = made.json()["secret"]

    tab = Session(browser, url, tmp_path)
    tab.open()
    tab.login(tokens[Role.viewer]["Authorization"].split()[1])
    page = tab.page
    page.wait_for_selector("#app", state="visible")
    page.click("[data-panel=alerts-panel]")
    page.wait_for_selector("#alerts-status:has-text('No alerts yet')")
    page.wait_for_selector("#watchlist td:has-text('The walker')")

    server = rtsp_server(scene["clip"])
    started = time.time()
    watcher = subprocess.Popen([sys.executable, "-m", "reidkit", "watch", "--db", str(root), "--camera",
                                f"cam-b={server.url}", "--every", str(EVERY), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _stream_done(root, "cam-b") or watcher.poll() is not None, 120, "the stream's end")
    finally:
        watcher.send_signal(signal.SIGINT)  # as Ctrl-C: the watcher commits, then delivers what is due
        output, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, output
    assert "cam-b:" in output and "Traceback" not in output, output

    with httpx.Client(base_url=url, timeout=60) as client:
        alerts = client.get(f"{API}/alerts", headers=tokens[Role.viewer]).json()["alerts"]
    his = walker_live_tracks(root, "cam-b", scene["boxes_b"])
    assert his, "the walker's boxes match no live track"
    (alert,) = alerts  # camera B shows other people too: none of them alerts
    assert alert["person"]["name"] == "The walker" and alert["camera"] == "cam-b"
    assert alert["track_id"] in his, (alert, his)
    assert 0 < alert["latency_s"] < time.time() - started
    print(f"alert {alert['id']}: score {alert['score']:.3f}, {alert['latency_s']:.2f} s from the first frame to the "
          f"alert stored")

    card = page.wait_for_selector(f".alert[data-alert-id='{alert['id']}']")
    assert "The walker" in card.text_content() and "camera cam-b" in card.text_content()
    assert card.get_attribute("data-track-id") == str(alert["track_id"])
    tab.images_loaded(".alert img")
    assert page.locator(".alert").count() == 1
    tab.shot("alerts-e2e")
    card.query_selector("button").click()  # "Search this track": the alert's track becomes the query
    page.wait_for_selector(f"#search-status:has-text('hits for the track {alert['track_id']}')")
    tab.close()

    deadline = time.monotonic() + 15
    while len(receiver.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    receiver.close()
    assert sorted(path for path, _ in receiver.received) == ["/flaky", "/ok"] and not receiver.bad
    assert all(body["id"] == alert["id"] and body["track_id"] == alert["track_id"] for _, body in receiver.received)
    tried = sorted((a.url.rsplit("/", 1)[1], a.attempt, a.status) for a in attempts(root, alert["id"]))
    assert tried == [("flaky", 1, 500), ("flaky", 2, 204), ("ok", 1, 204)]


def test_enrolment_on_the_page_from_a_hit_and_from_a_photo(scene: dict[str, Any], serve: Callable[..., str],
                                                           browser: Any, tmp_path: Path) -> None:
    """An operator enrols the person of a search hit (*Watch this person* on its frame) and one from a photo; a
    viewer sees the watch list but neither the form nor the button."""
    root, walker = scene["root"], scene["walker"]
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    operator = create_token(root, Role.operator, "page operator")[1]
    viewer = create_token(root, Role.viewer, "page viewer")[1]
    query_track = max(walker.tracks_a, key=lambda t: walker.tracks_a[t])
    with StoreReader.open(root) as store:
        crop = root / store.track_detections(query_track)[3].crop_path

    tab = Session(browser, url, tmp_path)
    tab.open()
    tab.login(operator)
    page = tab.page
    page.wait_for_selector("#app", state="visible")
    page.set_input_files("#photo", str(crop))
    page.wait_for_selector("#query-canvas", state="visible")
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('hits for the photo')")
    hit_track = page.eval_on_selector(".hit", "card => card.dataset.trackId")
    page.click(".hit >> nth=0")
    page.wait_for_selector("#frame-watch", state="visible")
    page.click("#frame-watch")
    page.wait_for_selector("#alerts-panel", state="visible")
    assert page.input_value("#enrol-track") == hit_track
    page.fill("#enrol-name", "From a hit")
    page.click("#enrol-button")
    page.wait_for_selector("#watchlist-status:has-text('Enrolled From a hit')")
    page.fill("#enrol-name", "From a photo")
    page.set_input_files("#enrol-photo", str(crop))
    page.click("#enrol-button")
    page.wait_for_selector("#watchlist td:has-text('From a photo')")
    rows = page.eval_on_selector_all("#watchlist tbody tr", "rows => rows.map(r => r.cells[3].textContent)")
    assert f"track {hit_track}" in rows and any(text.startswith(f"photo '{crop.name}' (crop") for text in rows)
    tab.shot("watchlist-enrolled")
    tab.close()

    seen = Session(browser, url, tmp_path)
    seen.open()
    seen.login(viewer)
    seen.page.wait_for_selector("#app", state="visible")
    seen.page.click("[data-panel=alerts-panel]")
    seen.page.wait_for_selector("#watchlist td:has-text('From a photo')")
    assert seen.page.is_hidden("#enrol-form") and seen.page.is_hidden("#frame-watch")
    assert seen.page.locator("#watchlist button").count() == 0  # no Remove for viewers
    seen.close()
