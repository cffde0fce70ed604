"""Who is asking, checked before the service does any work: the token and role before a body byte is read, wrong
secrets cheap, limited per address and audited, tokens that expire; and what the service tells strangers (liveness
only, a docs page without a CDN, an honest ``Allow``). Through a real uvicorn server on 127.0.0.1; no model needed."""

from __future__ import annotations

import hashlib
import select
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from reidkit.service import audit
from reidkit.service.access import Role, TokenVerifier, create_token, list_tokens, revoke_token, verify
from reidkit.service.service_db import SERVICE_DB, connect
from reidkit.service.settings import ServiceSettings

REIDKIT = Path(sys.executable).with_name("reidkit")
API = "/api/v1"
_PART = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
         b"\0\0\0\x20ftypisom")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def slow_upload(url: str, path: str, secret: str | None, budget: int = 4 * 1024 * 1024) -> tuple[int, int, float]:
    """POST a chunked multipart body that claims to go on for ever, 64 kB every 10 ms up to ``budget`` bytes, reading
    the answer as soon as one comes: (status, body bytes sent before it came, seconds). Status 0: no answer within
    3 s of the budget being spent (the server waits for the rest of the body)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    auth = f"Authorization: Bearer {secret}\r\n" if secret else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: multipart/form-data; boundary=x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"\0" * 65536
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        sent, body = 0, _PART
        while sent < budget:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(body), body))
            except OSError:  # the server answered and closed: read what it said
                break
            sent += len(body)
            body = chunk
            time.sleep(0.01)
        if not select.select([sock], [], [], 3)[0]:
            return 0, sent, time.monotonic() - started
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), sent, time.monotonic() - started


def test_the_token_and_role_are_checked_before_a_body_byte_is_read(
    tmp_path: Path, serve: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spilled: list[int] = []  # multipart file parts spooled past memory onto the disk (stdlib, counted not mocked)
    rollover = tempfile.SpooledTemporaryFile.rollover
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", lambda self: (spilled.append(1), rollover(self)))
    db = tmp_path / "store"
    url = serve(db, ServiceSettings(max_video_bytes=400_000_000, max_image_bytes=400_000_000))
    viewer = create_token(db, Role.viewer, "viewer")[1]
    gone, revoked = create_token(db, Role.operator, "revoked")
    revoke_token(db, gone.id)
    cases = [("/videos", None, 401), ("/videos", viewer, 403), ("/videos", revoked, 401), ("/search", None, 401),
             ("/search/track/1", "rk_" + "y" * 43, 401), ("/purge", viewer, 403), ("/jobs/1/resume", viewer, 403)]
    for path, secret, status in cases:
        answer, sent, seconds = slow_upload(url, API + path, secret)
        assert (answer, sent < 1024 * 1024, seconds < 5) == (status, True, True), (path, secret, sent, seconds)
    assert spilled == [] and not (db / "uploads").exists()
    assert [e.action for e in audit.read(db)].count("denied") == 3


def test_wrong_secrets_are_cheap_limited_per_address_and_audited(tmp_path: Path, serve: Callable[..., str]) -> None:
    db = tmp_path / "store"
    url = serve(db, ServiceSettings(failed_auth_per_minute=4))
    _, secret = create_token(db, Role.viewer, "v")
    near = secret[:11] + ("A" if secret[11] != "A" else "B") + secret[12:]  # its lookup characters, a wrong rest
    verifier = TokenVerifier(db)
    started = time.perf_counter()
    assert not any(verifier.verify(near) for _ in range(20))
    assert time.perf_counter() - started < 0.5  # one HMAC each, not 20 x 80 ms of PBKDF2
    with httpx.Client(base_url=url, timeout=30) as client:
        codes = [client.get(f"{API}/me", headers=headers).status_code
                 for headers in (bearer(near), {}, bearer(near), bearer("rk_" + "z" * 43))]
        blocked = client.get(f"{API}/me", headers=bearer(secret))  # this address is out of tries, even the right one
        health = client.get(f"{API}/health")
    assert codes == [401] * 4 and health.json() == {"status": "ok"}
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 61
    assert "failed authentications" in blocked.json()["error"]["message"]
    failures = [e for e in audit.read(db) if e.action == "auth.failed"]
    assert len(failures) == 4 and all(e.who == "unauthenticated" and e.token_id is None for e in failures)
    assert failures[-1].target == "GET /api/v1/me from 127.0.0.1: an unknown, revoked or expired token"
    assert failures[-2].target == "GET /api/v1/me from 127.0.0.1: no bearer token"
    assert "refused for a minute" in failures[0].target
    stored = " ".join(e.target for e in audit.read(db))
    assert near[3:] not in stored and secret[3:] not in stored


def test_a_token_made_by_an_older_reidkit_verifies_and_is_rehashed(tmp_path: Path) -> None:
    """A service.sqlite of the last release (no expiry column, 200 000 PBKDF2 rounds) keeps its tokens working."""
    tmp_path.mkdir(exist_ok=True)
    secret, salt = "rk_" + "k" * 43, b"s" * 16
    with closing(sqlite3.connect(tmp_path / SERVICE_DB)) as old:
        old.execute("CREATE TABLE tokens (id INTEGER PRIMARY KEY AUTOINCREMENT, lookup TEXT NOT NULL UNIQUE, "
                    "name TEXT NOT NULL, role TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL, "
                    "iterations INTEGER NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)")
        old.execute("INSERT INTO tokens(lookup, name, role, salt, hash, iterations, created_at) VALUES (?, ?, ?, ?, ?, "
                    "?, ?)", (secret[3:11], "old", "admin", salt,
                              hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, 200_000), 200_000, "2025-01-01"))
        old.commit()
    caller = verify(tmp_path, secret)
    assert caller is not None and caller.name == "old" and caller.role is Role.admin
    assert list_tokens(tmp_path)[0].expires_at is None
    assert connect(tmp_path).execute("SELECT iterations FROM tokens").fetchone() == (1,)
    assert verify(tmp_path, secret) is not None and verify(tmp_path, secret[:-1] + "j") is None


def test_tokens_expire(tmp_path: Path, serve: Callable[..., str]) -> None:
    db = tmp_path / "store"
    url = serve(db)
    made = subprocess.run([str(REIDKIT), "token", "create", "--db", db, "--role", "viewer", "--expires", "90d"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    for bad in ("90", "3x", "-2d", "0h", "d"):
        refused = subprocess.run([str(REIDKIT), "token", "create", "--db", db, "--role", "viewer", "--expires", bad],
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and refused.stderr.startswith(f"error: --expires {bad!r}"), refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    listed = subprocess.run([str(REIDKIT), "token", "list", "--db", db], capture_output=True, text=True, timeout=120)
    expires = list_tokens(db)[0].expires_at
    assert expires is not None and expires[:10] in listed.stdout and "expires" in listed.stdout.splitlines()[0]
    _, brief = create_token(db, Role.viewer, "brief", timedelta(seconds=2))  # stored to the second: 1-2 s
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"{API}/me", headers=bearer(brief)).status_code == 200
        time.sleep(2.2)
        refused = client.get(f"{API}/me", headers=bearer(brief))
        assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]
        assert client.get(f"{API}/me", headers=bearer(made.stdout.splitlines()[-1])).status_code == 200


def test_allow_lists_every_method_of_a_path_and_the_docs_need_no_cdn(tmp_path: Path, serve: Callable[..., str]) -> None:
    url = serve(tmp_path / "store")
    with httpx.Client(base_url=url, timeout=30) as client:
        for path, methods in (("/videos", {"GET", "POST"}), ("/jobs/1", {"GET", "DELETE"}),
                              ("/videos/1", {"DELETE"})):
            refused = client.request("OPTIONS", API + path)
            assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
            assert set(refused.headers["allow"].split(", ")) - {"HEAD"} == methods, path
        docs = client.get(f"{API}/docs")
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in docs.headers["content-security-policy"]
        assert "//" not in "".join(line for line in docs.text.splitlines() if "<script" in line or "<link" in line)
        script = client.get("/static/docs.js")
        assert script.status_code == 200 and "openapi.json" in script.text and "innerHTML" not in script.text
        assert client.get(f"{API}/openapi.json").json()["paths"][f"{API}/videos"].keys() == {"get", "post"}
