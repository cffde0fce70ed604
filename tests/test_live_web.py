"""The web page's live cameras panel in a real browser (Debian's Chromium through Playwright): an admin registers an
RTSP camera served on loopback, the service's watcher ingests it, and a viewer's page shows its health."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import cut_clip  # tests/ is on sys.path (rootdir conftest)
from live_rtsp import RtspServer, rtsp_server_fixture, wait_for  # noqa: F401 - the rtsp_server fixture
from reidkit.service.access import Role, create_token
from reidkit.service.live_worker import stop_live_worker
from reidkit.service.settings import ServiceSettings

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        missing = "Debian's chromium is not installed (`make test` installs it: .ci/install-chromium)"
        if os.environ.get("REIDKIT_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


def test_the_cameras_panel_shows_a_live_cameras_health(
    tmp_path: Path, vtest_video: Path, serve: Callable[..., str], chromium: Any,
    rtsp_server: Callable[[Path], RtspServer],
) -> None:
    server = rtsp_server(cut_clip(vtest_video, tmp_path / "clip.mp4", 0, 300))
    db = tmp_path / "store"
    db.mkdir()
    admin, viewer = (create_token(db, role, role.name)[1] for role in (Role.admin, Role.viewer))
    url = serve(db, ServiceSettings(checkpoint="imagenet"))
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    try:
        with httpx.Client(base_url=url + "/api/v1", timeout=30) as client:
            added = client.post("/cameras", json={"name": "door", "url": server.url, "every": 2},
                                headers={"Authorization": f"Bearer {admin}"})
            assert added.status_code == 201, added.text
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        page.fill("#token", viewer)
        page.click("#login-form button[type=submit]")
        page.click("[data-panel=cameras-panel]")
        page.wait_for_selector("#live-cameras tr.camera-live", timeout=120_000)

        def cells() -> list[str]:
            return page.eval_on_selector_all("#live-cameras tbody tr.camera-live td", "tds => tds.map(t => t.textContent)")
        wait_for(lambda: float(cells()[2]) > 0, 30, "frames per second on the page")
        name, state, fps, lag, last, reconnects, dropped = cells()
        assert (name, state, reconnects) == ("door", "live", "0")
        assert lag.endswith(" s") and len(last) == 8 and dropped.isdigit()  # a count of frames, as the API gives it
        page.screenshot(path=str(tmp_path / "live-cameras.png"), full_page=True)
        page.click("[data-panel=search-panel]")  # leaving the panel stops its polling
        assert page.is_hidden("#cameras-panel")
    finally:
        context.close()
        stop_live_worker(db)
    assert not errors, errors
