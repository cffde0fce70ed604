"""The service's access control, audit log and limits, through a real uvicorn server on 127.0.0.1 and the real
``reidkit token`` command. These run on a store folder without footage: nothing here needs a model."""

from __future__ import annotations

import io
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reidkit.service import audit
from reidkit.service.access import Role, create_token, verify
from reidkit.service.limits import image_kind, video_kind
from reidkit.service.service_db import SERVICE_DB, connect
from reidkit.service.settings import ServiceSettings

REIDKIT = Path(sys.executable).with_name("reidkit")
API = "/api/v1"


def token_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REIDKIT), "token", *map(str, args)], capture_output=True, text=True, timeout=120)


def new_token(db: Path, role: str, name: str = "tester") -> str:
    made = token_cli("create", "--db", db, "--role", role, "--name", name)
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def jpeg_bytes(size: tuple[int, int] = (64, 128)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(out, format="JPEG")
    return out.getvalue()


def test_token_cli_prints_the_secret_once_and_stores_only_a_salted_hash(tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "path"
    refused = token_cli("create", "--db", typo, "--role", "admin")
    assert refused.returncode == 2 and refused.stderr.startswith(f"error: --db {typo} holds no reidkit store")
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "typo").exists()
    assert token_cli("list", "--db", typo).returncode == 2 and not (tmp_path / "typo").exists()
    db = tmp_path / "store"
    connect(db)  # what `reidkit serve` does on a folder no video went into yet
    made = token_cli("create", "--db", db, "--role", "operator", "--name", "ops <b>desk</b>")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.splitlines()[-1]
    assert re.fullmatch(r"rk_[A-Za-z0-9_-]{43}", secret)
    assert secret not in made.stdout.splitlines()[0]
    stored = b"".join(path.read_bytes() for path in db.glob(SERVICE_DB + "*"))
    assert secret.encode() not in stored and secret[3:].encode() not in stored
    caller = verify(db, secret)
    assert caller is not None and caller.role is Role.operator and caller.name == "ops <b>desk</b>"
    assert verify(db, secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None

    listed = token_cli("list", "--db", db)
    assert "operator" in listed.stdout and secret not in listed.stdout
    revoked = token_cli("revoke", "--db", db, "1")
    assert revoked.returncode == 0 and verify(db, secret) is None
    missing = token_cli("revoke", "--db", db, "7")
    assert missing.returncode == 2 and missing.stderr.startswith("error: no token 7")
    bad_role = token_cli("create", "--db", db, "--role", "root")
    assert bad_role.returncode == 2 and "--role 'root'" in bad_role.stderr and "Traceback" not in bad_role.stderr
    actions = [entry.action for entry in audit.read(db)]
    assert actions == ["token.revoke", "token.create"]


def test_a_purge_on_the_command_line_is_audited(tmp_path: Path) -> None:
    from reidkit.store.writer import Store

    db = tmp_path / "store"
    Store.open(db, writable=True, create=True).close()
    for extra in (["--dry-run"], []):
        purged = subprocess.run([str(REIDKIT), "purge", "--db", db, "--before", "2024-01-01", *extra],
                                capture_output=True, text=True, timeout=120)
        assert purged.returncode == 0, purged.stderr
    entries = [(e.action, e.who, e.token_id, e.target) for e in audit.read(db)]
    target = "before 2024-01-01T00:00:00: videos none; 0 tracks, 0 crops"
    assert entries == [("purge", "cli", None, target), ("purge.dry_run", "cli", None, target)]


def test_the_audit_log_refuses_update_and_delete(tmp_path: Path) -> None:
    _, secret = create_token(tmp_path, Role.viewer, "v")
    caller = verify(tmp_path, secret)
    assert caller is not None
    audit.record(tmp_path, caller, "search", "image 'q.jpg'", 7)
    with closing(sqlite3.connect(tmp_path / SERVICE_DB)) as connection:  # any client, not just reidkit's
        for statement in ("UPDATE audit SET hits = 0", "DELETE FROM audit", "UPDATE audit SET who = 'x' WHERE id = 1"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)
    entries = audit.read(tmp_path)
    assert [(e.action, e.who, e.hits) for e in entries] == [("search", "v", 7), ("token.create", "cli", None)]
    assert audit.read(tmp_path, limit=1, before_id=entries[0].id) == entries[1:]


@pytest.fixture(scope="module")
def empty_service(tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., str]) -> tuple[str, Path]:
    """A server on a store folder no video went into yet, with small limits to test them cheaply."""
    db = tmp_path_factory.mktemp("empty") / "store"
    settings = ServiceSettings(max_image_bytes=300_000, max_image_pixels=1_000_000, requests_per_minute=30)
    return serve(db, settings), db


def test_every_route_but_health_needs_a_valid_unrevoked_token(empty_service: tuple[str, Path]) -> None:
    url, db = empty_service
    viewer = new_token(db, "viewer", "v1")
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"{API}/health").json() == {"status": "ok"}  # liveness only, to anyone
        health = client.get(f"{API}/health", headers=bearer(viewer)).json()
        assert health["counts"]["videos"] == 0 and health["model_id"] is None and health["version"]
        assert client.get(f"{API}/health", headers=bearer(viewer + "x")).status_code == 401
        for headers in ({}, bearer("rk_" + "x" * 43), {"Authorization": "Basic dXNlcjpwYXNz"}, bearer(viewer + "x")):
            refused = client.get(f"{API}/cameras", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["code"] == "unauthorized"
        assert client.get(f"{API}/cameras", headers=bearer(viewer)).json() == {"cameras": []}
        token_id = next(t for t in audit.read(db) if t.action == "token.create").target.split()[1]
        assert token_cli("revoke", "--db", db, token_id).returncode == 0
        assert client.get(f"{API}/cameras", headers=bearer(viewer)).status_code == 401  # the very next request


def test_roles_viewer_cannot_read_the_audit_log_admin_can(empty_service: tuple[str, Path]) -> None:
    url, db = empty_service
    viewer, operator, admin = (new_token(db, role, f"{role}-r") for role in ("viewer", "operator", "admin"))
    with httpx.Client(base_url=url, timeout=30) as client:
        for secret in (viewer, operator):
            denied = client.get(f"{API}/audit", headers=bearer(secret))
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
        log = client.get(f"{API}/audit", headers=bearer(admin), params={"limit": 5})
    assert log.status_code == 200
    entries = log.json()["entries"]
    assert entries[0]["action"] == "audit" and entries[0]["who"] == "admin-r"
    denials = [(e["who"], e["target"]) for e in entries if e["action"] == "denied"]
    assert denials[:2] == [("operator-r", "GET /api/v1/audit"), ("viewer-r", "GET /api/v1/audit")]
    assert log.json()["next_before_id"] == entries[-1]["id"]


def test_the_web_page_is_public_holds_no_data_and_forbids_outside_scripts(empty_service: tuple[str, Path]) -> None:
    """The page and its files need no token (the log-in form is on it); everything it shows comes from the API,
    which does. ``/me`` tells the page who logged in."""
    url, db = empty_service
    operator = new_token(db, "operator", "page ops")
    with httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        scripts = re.findall(r'<script src="static/([\w.-]+)"', page.text)
        assert scripts == ["panels.js", "attributes.js", "app.js", "live-people.js", "zones.js", "live-cameras.js",
                           "alerts.js"] and "<script>" not in page.text
        assert not re.search(r"\son\w+=", page.text)  # no inline event handlers either
        for name in (*scripts, "style.css", "icon.svg"):
            assert client.get(f"/static/{name}").status_code == 200, name
        for missing in ("/static/index.html", "/static/..%2Fpage.py", "/static/nope.js"):
            assert client.get(missing).json()["error"]["code"] == "not_found", missing
        assert client.get(f"{API}/me").status_code == 401
        me = client.get(f"{API}/me", headers=bearer(operator)).json()
    assert me["name"] == "page ops" and me["role"] == "operator" and me["token_id"] >= 1


def test_each_upload_limit_is_its_own_4xx(empty_service: tuple[str, Path]) -> None:
    url, db = empty_service
    headers = bearer(new_token(db, "viewer", "limits"))

    def search(content: bytes, name: str = "q.jpg", kind: str = "image/jpeg", **fields: str) -> httpx.Response:
        return client.post(f"{API}/search", headers=headers, files={"image": (name, content, kind)}, data=fields)

    with httpx.Client(base_url=url, timeout=30) as client:
        cases = {
            "too_large": search(jpeg_bytes() + b"\0" * 300_000),  # over the 300 kB image limit
            "unsupported_type": search(b"GIF89a" + b"\0" * 100, "q.jpg"),  # named .jpg, sent as image/jpeg
            "too_many_pixels": search(jpeg_bytes((1200, 1000))),  # 1.2 MP over a 1 MP cap
            "bad_image": search(jpeg_bytes()[:200]),  # a JPEG cut off
            "empty_store": search(jpeg_bytes()),  # everything fine, but nothing ingested yet
        }
        statuses = {code: (response.status_code, response.json()["error"]["code"]) for code, response in cases.items()}
        assert statuses == {
            "too_large": (413, "too_large"),
            "unsupported_type": (415, "unsupported_type"),
            "too_many_pixels": (413, "too_many_pixels"),
            "bad_image": (400, "bad_image"),
            "empty_store": (409, "empty_store"),
        }
        # A body far over the limit is refused from its Content-Length, before it is read.
        huge = search(b"\xff\xd8\xff" + b"\0" * 3_000_000)
        assert huge.status_code == 413 and "request body" in huge.json()["error"]["message"]
        for top_k in ("0", "101", "ten"):
            bad = search(jpeg_bytes(), top_k=top_k)
            assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("top_k:"), top_k
        for field, value in (("box", "1,2,3"), ("box", "1,2,nan,4"), ("box", "5,5,1,1"), ("after", "yesterday"),
                             ("before", "2024-13-01")):
            bad = search(jpeg_bytes(), **{field: value})
            message = bad.json()["error"]["message"]
            assert bad.status_code == 400 and message.startswith(f"{field} ") and "--" not in message, message
        garbled = search(b"\xff\xd8\xff" + b"not a jpeg at all" * 20)  # JPEG's first bytes, nothing PIL can open
        assert garbled.status_code == 400 and garbled.json()["error"]["code"] == "bad_image"
        assert " object at " not in garbled.json()["error"]["message"]
        missing = client.post(f"{API}/search", headers=headers, data={"top_k": "3"})
        assert missing.status_code == 422 and "image" in missing.json()["error"]["message"]
        assert client.get(f"{API}/crops/5", headers=headers).status_code == 404
        assert client.get(f"{API}/nowhere", headers=headers).json()["error"]["code"] == "not_found"


def test_requests_per_token_per_minute(tmp_path: Path, serve: Callable[..., str]) -> None:
    db = tmp_path / "store"
    url = serve(db, ServiceSettings(requests_per_minute=5))
    first, second = new_token(db, "viewer", "a"), new_token(db, "viewer", "b")
    with httpx.Client(base_url=url, timeout=30) as client:
        codes = [client.get(f"{API}/videos", headers=bearer(first)).status_code for _ in range(7)]
        limited = client.get(f"{API}/videos", headers=bearer(first))
        other = client.get(f"{API}/videos", headers=bearer(second))
    assert codes == [200] * 5 + [429] * 2
    assert limited.json()["error"]["code"] == "rate_limited" and 1 <= int(limited.headers["retry-after"]) <= 61
    assert other.status_code == 200  # the limit is per token


def test_content_is_sniffed_not_named() -> None:
    assert image_kind(jpeg_bytes()[:16]) == "jpeg"
    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, format="PNG")
    assert image_kind(png.getvalue()[:16]) == "png"
    assert image_kind(b"RIFF\0\0\0\0WEBPVP8 ") == "webp" and image_kind(b"RIFF\0\0\0\0AVI LIST") is None
    assert video_kind(b"\0\0\0\x20ftypisom") == "mp4" and video_kind(b"RIFF\0\0\0\0AVI LIST") == "avi"
    assert video_kind(b"\x1a\x45\xdf\xa3\x01\0\0\0") == "mkv" and video_kind(b"<html><body>") is None


def test_serve_command_binds_loopback_and_answers(tmp_path: Path) -> None:
    process = subprocess.Popen([str(REIDKIT), "serve", "--db", tmp_path / "store", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = re.search(r"on http://127\.0\.0\.1:(\d+)/api/v1", line)
        assert port, line
        for _ in range(200):
            try:
                health = httpx.get(f"http://127.0.0.1:{port[1]}{API}/health", timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=30)
    bad_port = subprocess.run([str(REIDKIT), "serve", "--db", tmp_path, "--port", "70000"], capture_output=True,
                              text=True, timeout=60)
    assert bad_port.returncode == 2 and bad_port.stderr.startswith("error: --port 70000")
    no_tries = subprocess.run([str(REIDKIT), "serve", "--db", tmp_path, "--auth-failures", "0"], capture_output=True,
                              text=True, timeout=60)
    assert no_tries.returncode == 2 and no_tries.stderr.startswith("error: --rate-limit, --auth-failures")
