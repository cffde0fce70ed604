"""The web page in a real browser: Debian's Chromium, headless, driven by Playwright, against a real uvicorn server
on the small store. Log in, search with a photo, open a hit's frame and search again from a box drawn on it, the
timeline, the audit log for admins only, names that look like HTML shown as text, and an upload watched to its end.

Each page is saved as a PNG under a test folder (and copied to ``$REIDKIT_TEST_ARTIFACTS`` when it is set), so a
person can look at what the browser drew. One browser serves the whole module; each test has a fresh context (its
own sessionStorage, so its own log-in).
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import cut_clip  # tests/ is on sys.path (rootdir conftest)

from reidkit.service.access import Role, create_token
from reidkit.service.settings import ServiceSettings
from reidkit.store.writer import Store

pytestmark = [pytest.mark.slow, pytest.mark.browser]
API = "/api/v1"
XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        missing = "Debian's chromium is not installed (`make test` installs it: .ci/install-chromium)"
        if os.environ.get("REIDKIT_REQUIRE_BROWSER"):  # set by `make test`: a browser test never silently skips
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-screens")


class Session:
    """A browser tab on the service, with what it logged: uncaught script errors, console errors (CSP refusals
    among them) and dialogs (an alert() from injected markup would be one)."""

    def __init__(self, browser: Any, url: str, screens: Path, viewport: tuple[int, int] = (1280, 900)) -> None:
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.url, self.screens = url, screens
        self.script_errors: list[str] = []
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def open(self) -> Any:
        return self.page.goto(self.url + "/")

    def login(self, token: str) -> None:
        self.page.fill("#token", token)
        self.page.click("#login-form button[type=submit]")

    def shot(self, name: str) -> Path:
        path = self.screens / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        copy_to = os.environ.get("REIDKIT_TEST_ARTIFACTS")
        if copy_to:
            Path(copy_to).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(copy_to) / path.name)
        return path

    def images_loaded(self, selector: str) -> None:
        """Wait until every image under ``selector`` has decoded (blob: URLs fetched with the token)."""
        self.page.wait_for_function(
            "s => { const all = [...document.querySelectorAll(s)];"
            " return all.length > 0 && all.every(i => i.complete && i.naturalWidth > 0); }",
            arg=selector,
        )

    def close(self) -> None:
        assert not self.script_errors, self.script_errors
        refused = [text for text in self.console_errors if "Content Security Policy" in text]
        assert not refused, refused
        self.context.close()


@pytest.fixture
def session(browser: Any, screens: Path) -> Iterator[Callable[[str], Session]]:
    opened: list[Session] = []

    def make(url: str, viewport: tuple[int, int] = (1280, 900)) -> Session:
        opened.append(Session(browser, url, screens, viewport))
        return opened[-1]

    yield make
    for one in opened:
        one.close()


@pytest.fixture(scope="module")
def web(small_store: Path, serve: Callable[..., str]) -> tuple[str, dict[str, str]]:
    """The server on the small store and a token per role."""
    url = serve(small_store, ServiceSettings(requests_per_minute=10_000))
    tokens = {role.name: create_token(small_store, role, f"web {role.name}")[1] for role in Role}
    return url, tokens


def query_crop(root: Path) -> Path:
    """A crop from the middle of the store's longest track: a real person photo to search with."""
    with Store.open(root) as store:
        (track_id,) = store.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
        return root / store.track_detections(track_id)[2].crop_path


def api_search(url: str, token: str, photo: Path, top_k: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=120) as client:
        found = client.post(f"{API}/search", headers={"Authorization": f"Bearer {token}"}, data={"top_k": str(top_k)},
                            files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert found.status_code == 200, found.text
    return found.json()  # type: ignore[no-any-return]


def test_the_api_reference_renders_offline_under_the_pages_csp(web: tuple, session: Callable) -> None:
    """``/api/v1/docs`` draws every route of the spec with scripts from this server only (``Session.close``
    asserts no script error and no CSP refusal); the browser would have fetched Swagger UI from a CDN before."""
    url, _ = web
    tab = session(url)
    requested: list[str] = []
    tab.page.on("request", lambda request: requested.append(request.url))
    assert tab.page.goto(url + API + "/docs").status == 200
    tab.page.wait_for_selector("#routes h2")
    headings = tab.page.locator("#routes h2").all_text_contents()
    assert "POST /api/v1/videos" in headings and "GET /api/v1/health" in headings
    assert tab.page.locator("#routes td", has_text="camera").count() >= 1
    assert requested and all(one.startswith(url) for one in requested), requested
    tab.shot("api-docs")


def test_login_refuses_a_wrong_token_and_keeps_the_right_one_for_the_tab(web: tuple, session: Callable) -> None:
    url, tokens = web
    tab = session(url)
    response = tab.open()
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    page = tab.page
    assert page.is_visible("#login") and page.is_hidden("#app")
    tab.shot("01-login")

    tab.login("rk_" + "x" * 43)
    page.wait_for_selector("#login-error:has-text('401')")
    assert "unknown, revoked or expired" in page.text_content("#login-error")
    assert page.is_hidden("#app") and page.evaluate("sessionStorage.length") == 0
    tab.shot("02-login-refused")

    tab.login(tokens["viewer"])
    page.wait_for_selector("#app", state="visible")
    assert page.text_content("#who-role") == "viewer" and page.text_content("#who-name") == "web viewer"
    assert page.is_hidden("[data-panel=audit-panel]") and page.is_hidden("[data-panel=upload-panel]")
    assert page.evaluate("sessionStorage.getItem('reidkit.token')") == tokens["viewer"]
    page.wait_for_selector("#camera option[value=cam1]", state="attached")
    page.reload()  # the token lives as long as the tab
    page.wait_for_selector("#app", state="visible")
    page.click("#logout")
    page.wait_for_selector("#login", state="visible")
    assert page.is_hidden("#app") and page.evaluate("sessionStorage.length") == 0


def test_search_with_a_photo_shows_hits_their_frame_and_the_timeline(
    small_store: Path, web: tuple, session: Callable
) -> None:
    url, tokens = web
    photo = query_crop(small_store)
    expected = api_search(url, tokens["viewer"], photo, 5)
    tab = session(url)
    tab.open()
    tab.login(tokens["viewer"])
    page = tab.page
    page.wait_for_selector("#app", state="visible")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#query-canvas", state="visible")
    page.fill("#top-k", "5")
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('5 hits')")
    tab.images_loaded("#hits img")
    shown = page.eval_on_selector_all(".hit", "cards => cards.map(c => Number(c.dataset.trackId))")
    assert shown == [hit["track_id"] for hit in expected["hits"]]
    assert page.text_content(".hit .camera") == "cam1"
    assert page.text_content(".hit .rank") == f"#1  score {expected['hits'][0]['score']:.3f}"
    assert page.locator("#timeline rect.visit").count() == len(expected["trajectory"])
    assert page.text_content("#timeline .camera-label") == "cam1"
    tab.shot("03-search-hits")

    first = expected["hits"][0]
    page.click(".hit >> nth=0")
    page.wait_for_selector("#frame-view", state="visible")
    tab.images_loaded("#frame-image")
    size = page.eval_on_selector("#frame-image", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [768, 576]
    assert f"Track {first['track_id']}, camera cam1" in page.text_content("#frame-title")
    tab.shot("04-frame")

    # The same frame, unboxed, becomes the query; a box dragged around the hit's person finds that track again.
    page.wait_for_selector("#frame-query:not([disabled])")
    page.click("#frame-query")
    page.wait_for_selector("#search-status:has-text('Drag a box')")
    assert page.is_hidden("#frame-view")
    canvas = page.locator("#query-canvas").bounding_box()
    scale = canvas["width"] / 768
    x0, y0, x1, y1 = first["box"]
    page.mouse.move(canvas["x"] + x0 * scale, canvas["y"] + y0 * scale)
    page.mouse.down()
    page.mouse.move(canvas["x"] + (x0 + x1) / 2 * scale, canvas["y"] + (y0 + y1) / 2 * scale, steps=3)
    page.mouse.move(canvas["x"] + x1 * scale, canvas["y"] + y1 * scale, steps=3)
    page.mouse.up()
    drawn = [float(v) for v in page.text_content("#box-text").split(",")]
    assert all(abs(a - b) <= 2 / scale + 1 for a, b in zip(drawn, first["box"])), (drawn, first["box"])
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('hits for the photo frame-')")
    tab.images_loaded("#hits img")
    assert page.eval_on_selector(".hit", "card => Number(card.dataset.trackId)") == first["track_id"]
    tab.shot("05-search-from-a-box")


def test_the_audit_log_is_shown_to_admins_only(small_store: Path, web: tuple, session: Callable) -> None:
    url, tokens = web
    photo = query_crop(small_store)
    renamed = photo.with_name("audit-me.jpg")
    with httpx.Client(base_url=url, timeout=120) as client:
        found = client.post(f"{API}/search", headers={"Authorization": f"Bearer {tokens['viewer']}"},
                            files={"image": (renamed.name, photo.read_bytes(), "image/jpeg")})
    assert found.status_code == 200, found.text

    viewer = session(url)
    viewer.open()
    viewer.login(tokens["viewer"])
    viewer.page.wait_for_selector("#app", state="visible")
    assert viewer.page.is_hidden("[data-panel=audit-panel]") and viewer.page.is_hidden("#audit-panel")

    admin = session(url)
    admin.open()
    admin.login(tokens["admin"])
    page = admin.page
    page.click("[data-panel=audit-panel]")
    page.wait_for_selector("#audit-status:has-text('entries shown')")
    rows = page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert rows[0][2:5] == ["web admin", "admin", "audit"]
    searched = [row for row in rows if row[4] == "search" and "'audit-me.jpg'" in row[5]]
    assert searched and searched[0][2:4] == ["web viewer", "viewer"]
    assert searched[0][6] == str(len(found.json()["hits"]))
    admin.shot("06-audit-log")


def test_names_that_look_like_html_are_shown_as_text(
    small_store: Path, vtest_video: Path, tmp_path: Path, serve: Callable[..., str], session: Callable
) -> None:
    """A camera and a video file named like markup (users choose both) appear verbatim and run nothing."""
    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    video = tmp_path / "<b onmouseover=alert(2)>clip.avi"
    video.symlink_to(vtest_video)
    with closing(sqlite3.connect(root / "reidkit.sqlite")) as db, db:
        db.execute("UPDATE cameras SET name = ?", (XSS,))
        db.execute("UPDATE videos SET path = ?", (str(video),))
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    token = create_token(root, Role.operator, "ops")[1]
    photo = query_crop(root)

    tab = session(url)
    tab.open()
    tab.login(token)
    page = tab.page
    page.wait_for_selector("#app", state="visible")
    page.wait_for_selector("#camera option >> nth=1", state="attached")
    assert page.eval_on_selector_all("#camera option", "options => options.map(o => o.textContent)") == [
        "all cameras", XSS]
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#query-canvas", state="visible")
    page.select_option("#camera", XSS)  # the filter sends the name back as typed
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('hits for the photo')")
    tab.images_loaded("#hits img")
    assert page.text_content(".hit .camera") == XSS
    assert page.text_content("#timeline .camera-row title") == XSS
    page.click(".hit >> nth=0")
    tab.images_loaded("#frame-image")
    assert XSS in page.text_content("#frame-title")
    page.click("#frame-close")
    tab.shot("07-names-as-text-search")

    page.click("[data-panel=upload-panel]")
    page.wait_for_selector("#videos tbody tr")
    cells = page.eval_on_selector_all("#videos tbody tr:first-child td", "cells => cells.map(c => c.textContent)")
    assert cells[1:3] == [XSS, video.name]
    tab.shot("08-names-as-text-videos")
    assert page.locator("img[src=x], b[onmouseover]").count() == 0
    page.hover("#videos tbody td >> nth=2")
    assert tab.dialogs == []


def test_an_operator_uploads_a_video_and_watches_its_job_finish(
    small_store: Path, vtest_video: Path, tmp_path: Path, serve: Callable[..., str], session: Callable
) -> None:
    """A 3 s clip the store lacks (frames 100-129 of the shared video), every 2nd frame, as camera ``lobby``: the
    job's progress shows, it ends ``done``, and the new video and camera appear."""
    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    with httpx.Client(base_url=url, timeout=60) as client:
        spec = client.get(f"{API}/openapi.json").json()
    if "post" not in spec["paths"].get(f"{API}/videos", {}):
        pytest.skip("this build of the service has no POST /api/v1/videos (the ingest side) yet")
    tab = session(url)
    tab.open()
    tab.login(create_token(root, Role.operator, "ops")[1])
    page = tab.page
    page.click("[data-panel=upload-panel]")
    page.wait_for_selector("#videos tbody tr")
    clip = cut_clip(vtest_video, tmp_path / "lobby <clip>.mp4", 100, 30)
    page.set_input_files("#video-file", str(clip))
    page.fill("#video-camera", "lobby")
    page.fill("#video-start", "2024-05-01T10:00:00")
    page.fill("#video-every", "2")
    page.click("#upload-button")
    page.wait_for_selector("#job:visible, #upload-status.error")
    assert page.is_visible("#job"), page.text_content("#upload-status")
    assert page.text_content("#job-title").startswith("Job 1 (") and "camera lobby" in page.text_content("#job-title")
    tab.shot("09-upload-job-started")
    page.wait_for_selector("#job-status:text-matches('done|failed|cancelled|interrupted')", timeout=240_000)
    tab.shot("10-upload-job-done")
    assert page.text_content("#job-status") == "done", page.text_content("#job-message")
    assert page.eval_on_selector("#job-progress", "bar => bar.value") == 1
    assert page.is_hidden("#job-cancel")
    page.wait_for_selector("#videos tbody tr >> nth=1")
    cameras = page.eval_on_selector_all("#videos tbody tr", "rows => rows.map(r => r.cells[1].textContent)")
    assert sorted(cameras) == ["cam1", "lobby"]
    page.wait_for_selector("#camera option[value=lobby]", state="attached")


PHONE = (390, 844)  # an iPhone 12-15 in portrait, in CSS pixels
LONG_CAMERA = "entrance-north-parking-garage-level-2-camera-07"
# Elements of the app whose right edge lies past the viewport (what a phone user must scroll sideways to see).
STICKING_OUT = """() => { const w = document.documentElement.clientWidth;
  return [...document.querySelectorAll('#app *')].filter((e) => e.getClientRects().length
    && e.getBoundingClientRect().right > w + 0.5).map((e) => e.id || e.className.baseVal || e.className || e.tagName);
}"""


def test_at_phone_width_the_page_fits_and_shows_only_the_current_query_and_its_hits(
    small_store: Path, tmp_path: Path, serve: Callable[..., str], session: Callable
) -> None:
    """At 390 px: nothing sticks out sideways (a long camera name in the filter included), the timeline's labels
    are as large as on a desktop, a search that fails clears the hits of the one before, and "More of this track"
    shows the track as the query instead of the photo searched before."""
    from PIL import Image, ImageOps

    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    with closing(sqlite3.connect(root / "reidkit.sqlite")) as db, db:
        db.execute("UPDATE cameras SET name = ?", (LONG_CAMERA,))
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    photo = tmp_path / "framed.jpg"  # the crop in a grey frame: another size than any stored crop
    ImageOps.expand(Image.open(query_crop(root)), border=20, fill=(128, 128, 128)).save(photo, quality=95)
    empty = tmp_path / "empty-street.jpg"  # a whole frame without anybody: the service answers "no person found"
    Image.new("RGB", (320, 240), (90, 90, 90)).save(empty)

    token = create_token(root, Role.viewer, "phone")[1]
    first = api_search(url, token, photo, 10)["hits"][0]
    with httpx.Client(base_url=url, timeout=60) as client:
        crop = client.get(first["crop_url"], headers={"Authorization": f"Bearer {token}"})
    crop_size = list(Image.open(io.BytesIO(crop.content)).size)
    assert crop_size != list(Image.open(photo).size)

    tab = session(url, PHONE)
    tab.open()
    tab.login(token)
    page = tab.page
    page.wait_for_selector("#camera option >> nth=1", state="attached")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#query-canvas", state="visible")
    assert page.evaluate(STICKING_OUT) == []
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('hits for the photo framed.jpg')")
    tab.images_loaded("#hits img")
    tab.shot("11-phone-search")
    assert page.evaluate(STICKING_OUT) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    label_heights = page.eval_on_selector_all("#timeline text", "ts => ts.map(t => t.getBoundingClientRect().height)")
    assert len(label_heights) >= 3 and min(label_heights) >= 12, label_heights  # 13 px and 12 px type, unscaled

    page.set_input_files("#photo", str(empty))
    page.wait_for_selector("#query-name:has-text('empty-street.jpg')")
    page.click("#search-button")
    page.wait_for_selector("#search-status.error")
    assert "no person found" in page.text_content("#search-status")
    assert page.locator("#hits .hit").count() == 0 and page.locator("#timeline svg").count() == 0
    assert page.is_hidden("#hits-title") and page.is_hidden("#timeline-title")
    tab.shot("12-phone-search-failed")

    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#query-name:has-text('framed.jpg')")
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('hits for the photo framed.jpg')")
    tab.images_loaded("#hits img")
    assert page.eval_on_selector(".hit", "card => Number(card.dataset.trackId)") == first["track_id"]
    page.click(".hit >> nth=0")
    tab.images_loaded("#frame-image")
    page.click("#frame-track")
    page.wait_for_selector(f"#search-status:has-text('hits for the track {first['track_id']}')")
    assert page.text_content("#query-name").startswith(f"track {first['track_id']}")
    assert page.eval_on_selector("#query-canvas", "c => [c.width, c.height]") == crop_size  # not the photo
    assert page.evaluate(STICKING_OUT) == []
    tab.shot("13-phone-more-of-this-track")


def test_attribute_chips_search_by_description_and_hits_show_their_attributes(
    attribute_store: Path, serve: Callable[..., str], session: Callable
) -> None:
    url = serve(attribute_store, ServiceSettings(requests_per_minute=10_000))
    token = create_token(attribute_store, Role.viewer, "web chips")[1]
    with httpx.Client(base_url=url, timeout=120) as client:
        found = client.post(f"{API}/search/attributes", headers={"Authorization": f"Bearer {token}"},
                            data={"attributes": ["upper=black", "lower_length=long"], "top_k": "5"})
    assert found.status_code == 200, found.text
    expected = found.json()
    tab = session(url)
    tab.open()
    tab.login(token)
    page = tab.page
    page.wait_for_selector("#describe", state="visible")
    assert page.locator(".chip").count() == 39  # every value of the 12 groups but the two colour groups' "other"
    page.click(".chip[data-group=upper][data-value=black]")
    page.click(".chip[data-group=lower_length][data-value=long]")
    assert page.text_content("#describe-text") == "upper=black lower_length=long"
    assert page.get_attribute(".chip[data-group=upper][data-value=black]", "aria-pressed") == "true"
    page.fill("#top-k", "5")
    page.click("#search-button")
    page.wait_for_selector("#search-status:has-text('hits for the description upper=black lower_length=long')")
    tab.images_loaded("#hits img")
    shown = page.eval_on_selector_all(".hit", "cards => cards.map(c => Number(c.dataset.trackId))")
    assert shown == [hit["track_id"] for hit in expected["hits"]]
    assert page.locator(".hit .attributes").count() >= 1
    tab.shot("08-search-by-description")
    page.click(".chip[data-group=upper][data-value=black]")  # a second click takes the value back
    assert page.text_content("#describe-text") == "lower_length=long"
