"""Zones on the real shared video's store: the heat map over its frame, and the API (roles, one-line refusals, the
report as JSON and CSV, the PNG and the frame, the audit log) on a real uvicorn server; and the web page drawing a
zone by clicks in Debian's Chromium. The store is a copy of the session's small store (camera ``cam1``: the first
60 frames of vtest.avi, every 2nd), since zones are written into its folder."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from reidkit.live.heatmap import heatmap_png
from reidkit.live.zone_output import report_json
from reidkit.live.zone_report import PRESENCE_COLUMNS, zone_report
from reidkit.live.zones import Zone, load_zones
from reidkit.service import audit
from reidkit.service.access import Role, create_token
from reidkit.service.settings import ServiceSettings
from reidkit.store.reader import StoreReader

pytestmark = pytest.mark.slow  # the small store is an ingest of the shared video
API = "/api/v1"
FLOOR = [[0, 300], [768, 300], [768, 576], [0, 576]]  # the lower part of vtest.avi's 768x576 frame: its walkers' feet


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, small_store: Path) -> Path:
    root = tmp_path_factory.mktemp("zones-store") / "store"
    shutil.copytree(small_store, root)
    return root


@pytest.fixture(scope="module")
def server(store: Path, serve: Callable[..., str]) -> tuple[str, dict[str, dict[str, str]]]:
    url = serve(store, ServiceSettings(requests_per_minute=10_000))
    return url, {role.name: {"Authorization": f"Bearer {create_token(store, role, f'zones {role.name}')[1]}"}
                 for role in Role}


def test_heat_map_of_the_shared_video_is_a_png_of_its_frame(store: Path, tmp_path: Path) -> None:
    with StoreReader.open(store) as reader:
        png, frame, sightings = heatmap_png(reader, store, "cam1", [Zone("cam1", "floor", tuple(map(tuple, FLOOR)))])
        plain, _, _ = heatmap_png(reader, store, "cam1", [], weighted=True)
    assert frame.source == "video" and sightings > 30
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG" and picture.size == (768, 576)
    drawn = np.asarray(picture.convert("RGB")).astype(int)
    changed = np.abs(drawn - frame.image.astype(int)).max(axis=2) > 8
    assert 0.01 < changed.mean() < 0.9  # heat where people stood, the frame as it was elsewhere
    assert tuple(drawn[300, 384]) == (80, 220, 255)  # the zone's top edge, in the zones' colour
    assert plain != png  # dwell-weighted, without zones: another picture


def test_api_roles_report_csv_heat_map_frame_and_audit(server: tuple[str, dict[str, dict[str, str]]],
                                                       store: Path) -> None:
    url, tokens = server
    zone = {"camera": "cam1", "name": "floor", "polygon": FLOOR}
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.put(f"{API}/zones", json=zone).status_code == 401
        assert client.put(f"{API}/zones", json=zone, headers=tokens["viewer"]).status_code == 403
        saved = client.put(f"{API}/zones", json=zone, headers=tokens["operator"])
        assert saved.status_code == 200 and saved.json()["frame"] == {"width": 768, "height": 576}
        for bad, words in (({**zone, "polygon": [[0, 0], [900, 0], [0, 10]]}, "polygon point 2 (900, 0) lies outside"),
                           ({**zone, "polygon": [[0, 0], [10, 10], [10, 0], [0, 10]]}, "polygon crosses itself"),
                           ({**zone, "camera": "nope"}, "camera 'nope': no such camera"),
                           ({**zone, "name": ""}, "name '' must be")):
            refused = client.put(f"{API}/zones", json=bad, headers=tokens["admin"])
            assert refused.status_code == 400 and refused.json()["error"]["message"].startswith(words), refused.text
        listed = client.get(f"{API}/zones", params={"camera": "cam1"}, headers=tokens["viewer"]).json()
        assert listed["zones"] == [{"camera": "cam1", "name": "floor", "polygon": FLOOR}]

        answer = client.get(f"{API}/zones/report", params={"bucket": "1s"}, headers=tokens["viewer"])
        assert answer.status_code == 200
        with StoreReader.open(store) as reader:  # the same numbers as the command line's
            expected = report_json(zone_report(reader, load_zones(store), bucket_s=1.0))
        assert answer.json() == expected and expected["by"] == "track" and expected["presence"]
        as_csv = client.get(f"{API}/zones/report", params={"format": "csv"}, headers=tokens["viewer"])
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert tuple(rows[0]) == PRESENCE_COLUMNS and len(rows) == len(expected["presence"])
        assert float(rows[0]["dwell_s"]) == expected["presence"][0]["dwell_s"]
        counts = client.get(f"{API}/zones/report", params={"format": "csv", "table": "counts", "bucket": "1s"},
                            headers=tokens["viewer"])
        assert counts.text.splitlines()[0] == "camera,zone,bucket_start,bucket_s,present,entries,exits,dwell_s"
        refused = client.get(f"{API}/zones/report", params={"bucket": "0"}, headers=tokens["viewer"])
        assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("bucket '0' must be")

        heat = client.get(f"{API}/zones/heatmap", params={"camera": "cam1"}, headers=tokens["viewer"])
        assert heat.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(heat.content)).size == (768, 576)
        frame = client.get(f"{API}/zones/frame", params={"camera": "cam1"}, headers=tokens["viewer"])
        assert frame.headers["x-frame-source"] == "video"
        assert Image.open(io.BytesIO(frame.content)).size == (768, 576)
        assert client.get(f"{API}/zones/frame", params={"camera": "nope"},
                          headers=tokens["viewer"]).status_code == 404

        gone = {"camera": "cam1", "name": "floor"}
        assert client.delete(f"{API}/zones", params=gone, headers=tokens["viewer"]).status_code == 403
        assert client.delete(f"{API}/zones", params=gone, headers=tokens["operator"]).json() == {"zones": []}
        assert client.delete(f"{API}/zones", params=gone, headers=tokens["operator"]).status_code == 404
    actions = [entry.action for entry in audit.read(store, limit=200)]
    for action in ("zone.put", "zones", "zones.report", "zones.heatmap", "zones.frame", "zone.delete", "denied"):
        assert action in actions, action


@pytest.mark.browser
def test_page_draws_a_zone_by_clicks(server: tuple[str, dict[str, dict[str, str]]], store: Path,
                                     tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("REIDKIT_REQUIRE_BROWSER"):
            pytest.fail("Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    url, tokens = server
    token = tokens["operator"]["Authorization"].removeprefix("Bearer ")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.fill("#token", token)
        page.click("#login-form button[type=submit]")
        page.click('.tab[data-panel="zones-panel"]')
        page.wait_for_selector("#zones-canvas:not([hidden])")
        box = page.locator("#zones-canvas").bounding_box()
        scale = box["width"] / 768
        corners = [(100, 250), (700, 250), (700, 450), (100, 450)]  # where cam1's walkers stand
        for x, y in corners:
            page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)
        assert page.text_content("#zone-points") == "4 points"
        page.fill("#zone-name", "<b>lobby</b>")
        page.click("#zone-save")
        page.wait_for_selector("#zones-chart svg .visit")  # counts over time, drawn as bars
        cells = page.locator("#zones-summary tbody tr td").all_text_contents()
        assert cells[0] == "<b>lobby</b>" and int(cells[1]) >= 1  # shown as text, not markup; walkers inside
        assert page.text_content("#zones-status") == "Saved zone <b>lobby</b> (4 points)."
        page.check("#zones-heat")
        page.wait_for_function("() => zonesView.heat !== null && zonesView.heat.naturalWidth === 768")
        page.screenshot(path=str(tmp_path / "zones.png"), full_page=True)
        browser.close()
    assert not errors, errors
    (saved,) = [z for z in load_zones(store, "cam1") if z.name == "<b>lobby</b>"]
    for (x, y), (sx, sy) in zip(corners, saved.polygon, strict=True):
        assert abs(sx - x) <= 1.5 and abs(sy - y) <= 1.5  # clicks land on the frame's own pixels
