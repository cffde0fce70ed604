"""Webhooks: where alerts are POSTed, signed, retried with back-off, every attempt recorded.

Each webhook is a URL and a secret. The body is the alert's JSON; the header ``X-Reidkit-Signature: sha256=<hex>``
is HMAC-SHA256 of the exact body bytes under the secret, so a receiver can tell an alert from reidkit from one
anybody could have posted (compare with a constant-time comparison). The secret is kept in ``live.sqlite`` as it is
(signing needs it; a hash would not do), shown once when the webhook is made, and never listed or answered again.

Delivery runs in a background thread (``WebhookSender``) so a slow or dead receiver never holds up the live ingest:
an attempt that gets no 2xx answer (an error status, a refused connection, a timeout) is tried again after
``base_delay_s`` x 2^(attempt-1), at most ``max_attempts`` times in all. Every attempt is a row of
``webhook_attempts`` (alert, webhook, attempt number, time, HTTP status or error, delivered). Deliveries still
waiting when the process stops are not resumed by the next one; their attempts say how far they got.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reidkit.errors import ConfigError
from reidkit.live.live_db import ensure_tables, open_live_db

log = logging.getLogger("reidkit.live.webhooks")
WEBHOOKS_DDL = """
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    webhook_id INTEGER NOT NULL,   -- kept when the webhook is removed: the record of what was sent where
    url TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    status INTEGER,                -- the receiver's HTTP status; NULL when no answer came
    error TEXT,
    delivered INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_alert ON webhook_attempts(alert_id);
"""
SIGNATURE_HEADER = "X-Reidkit-Signature"
SECRET_PREFIX = "whsec_"
MAX_URL_CHARS = 2000
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BASE_DELAY_S = 1.0
REQUEST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Webhook:
    """A configured receiver; ``secret`` is only filled where the code signs (never in listings)."""

    id: int
    url: str
    created_at: str
    created_by: str
    secret: str = ""


@dataclass(frozen=True)
class Attempt:
    alert_id: int
    webhook_id: int
    url: str
    attempt: int
    at: str
    status: int | None
    error: str | None
    delivered: bool


def webhooks_db(store_root: Path) -> sqlite3.Connection:
    connection = open_live_db(store_root)
    ensure_tables(connection, WEBHOOKS_DDL)
    return connection


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: str, field: str = "--url") -> str:
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{field} {url[:80]!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ConfigError(f"{field} must not carry a user name or password; the signature authenticates alerts")
    return url


def add_webhook(store_root: Path, url: str, secret: str | None = None, created_by: str = "cli",
                field: str = "--url") -> tuple[Webhook, str]:
    """A new webhook and its secret (made up when not given: shown this once)."""
    url = check_url(url, field)
    if secret is not None and not 16 <= len(secret) <= 200:
        raise ConfigError("--secret must be 16 to 200 characters; leave it out to have one made")
    secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    with closing(webhooks_db(store_root)) as connection:
        cursor = connection.execute("INSERT INTO webhooks(url, secret, created_at, created_by) VALUES (?, ?, ?, ?)",
                                    (url, secret, created, created_by))
        return Webhook(int(cursor.lastrowid or 0), url, created, created_by), secret


def list_webhooks(store_root: Path, with_secrets: bool = False) -> list[Webhook]:
    with closing(webhooks_db(store_root)) as connection:
        rows = connection.execute("SELECT id, url, created_at, created_by, secret FROM webhooks ORDER BY id").fetchall()
    return [Webhook(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]) if with_secrets else "") for r in rows]


def remove_webhook(store_root: Path, webhook_id: int, field: str = "ID") -> Webhook:
    with closing(webhooks_db(store_root)) as connection:
        row = connection.execute("SELECT id, url, created_at, created_by FROM webhooks WHERE id = ?",
                                 (webhook_id,)).fetchone()
        if row is None:
            raise ConfigError(f"{field} {webhook_id}: no webhook has this id")
        connection.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
    return Webhook(int(row[0]), str(row[1]), str(row[2]), str(row[3]))


def attempts(store_root: Path, alert_id: int | None = None) -> list[Attempt]:
    """Delivery attempts, oldest first (of one alert, when given)."""
    query = "SELECT alert_id, webhook_id, url, attempt, at, status, error, delivered FROM webhook_attempts"
    params: tuple[int, ...] = ()
    if alert_id is not None:
        query, params = query + " WHERE alert_id = ?", (alert_id,)
    with closing(webhooks_db(store_root)) as connection:
        rows = connection.execute(query + " ORDER BY id", params).fetchall()
    return [Attempt(int(r[0]), int(r[1]), str(r[2]), int(r[3]), str(r[4]), r[5], r[6], bool(r[7])) for r in rows]


@dataclass(order=True)
class _Delivery:
    due: float
    sequence: int
    alert_id: int = 0
    webhook: Webhook | None = None
    body: bytes = b""
    attempt: int = 1


class WebhookSender:
    """Delivers alerts to every configured webhook from one background thread (see the module docstring)."""

    def __init__(self, store_root: Path, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 base_delay_s: float = DEFAULT_BASE_DELAY_S, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.root, self.max_attempts, self.base_delay_s, self.timeout_s = Path(store_root), max_attempts, \
            base_delay_s, timeout_s
        self._queue: list[_Delivery] = []
        self._sequence = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._busy = False  # a delivery is being attempted (popped from the queue, not yet pushed back)
        self._thread = threading.Thread(target=self._run, name="reidkit-webhooks", daemon=True)
        self._thread.start()

    def send(self, alert_id: int, payload: dict[str, Any]) -> int:
        """Queue ``payload`` for every webhook configured now; how many it goes to."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        hooks = list_webhooks(self.root, with_secrets=True)
        with self._wake:
            for hook in hooks:
                self._sequence += 1
                heapq.heappush(self._queue, _Delivery(time.monotonic(), self._sequence, alert_id, hook, body))
            self._wake.notify()
        return len(hooks)

    def close(self, wait_s: float = 10.0) -> None:
        """Stop once the deliveries due within ``wait_s`` are done (later retries are dropped, their attempts kept)."""
        deadline = time.monotonic() + wait_s
        with self._wake:
            while (self._busy or self._queue and self._queue[0].due < deadline) and time.monotonic() < deadline:
                self._wake.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()) + self.timeout_s)

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None  # opened with the first delivery: the store may not exist yet
        try:
            while True:
                with self._wake:
                    while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                        self._wake.wait(None if not self._queue else self._queue[0].due - time.monotonic())
                    if self._stopping:
                        return
                    delivery = heapq.heappop(self._queue)
                    self._busy = True
                status, error = self._post(delivery)
                delivered = status is not None and 200 <= status < 300
                assert delivery.webhook is not None
                try:
                    connection = connection or webhooks_db(self.root)
                    connection.execute(
                        "INSERT INTO webhook_attempts(alert_id, webhook_id, url, attempt, at, status, error, "
                        "delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (delivery.alert_id, delivery.webhook.id, delivery.webhook.url, delivery.attempt,
                         datetime.now(UTC).isoformat(timespec="milliseconds"), status, error, int(delivered)))
                except (sqlite3.Error, OSError):  # the record is lost, not the delivery or the ones after it
                    log.exception("the attempt to deliver alert %d to webhook %d was not recorded",
                                  delivery.alert_id, delivery.webhook.id)
                with self._wake:
                    if not delivered and delivery.attempt < self.max_attempts:
                        delivery.due = time.monotonic() + self.base_delay_s * 2 ** (delivery.attempt - 1)
                        delivery.attempt += 1
                        heapq.heappush(self._queue, delivery)
                    self._busy = False
                    self._wake.notify_all()  # close() waits for the queue to empty
        finally:
            if connection is not None:
                connection.close()

    def _post(self, delivery: _Delivery) -> tuple[int | None, str | None]:
        """One POST: the receiver's status, or None and why no answer came."""
        assert delivery.webhook is not None
        request = urllib.request.Request(
            delivery.webhook.url, data=delivery.body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "reidkit-alerts",
                     SIGNATURE_HEADER: sign(delivery.body, delivery.webhook.secret)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310 (http(s) checked)
                return int(answer.status), None
        except urllib.error.HTTPError as refused:
            return int(refused.code), None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, str(reason)[:300] or type(exc).__name__
