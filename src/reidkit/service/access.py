"""Who may do what: bearer tokens with a role and an optional expiry, stored only as salted hashes.

Roles are ordered, each including the ones below it: a **viewer** searches and views crops, frames and tracks; an
**operator** also ingests and deletes videos; an **admin** also reads the audit log, purges old footage and manages
tokens. A token's secret (``rk_`` + 43 URL-safe characters, 256 random bits) is shown once, when it is made; the
database keeps a random salt, HMAC-SHA256 of the secret under that salt (PBKDF2 with one round), and the secret's
first characters (``lookup``) to find the row without trying every hash. Those characters are a few bits of the 256,
so the row says nothing useful about the rest.

Why one round: key stretching slows the guessing of a password a person chose; a 256-bit random secret cannot be
guessed from a stolen database however fast its hash, while a slow hash made every wrong secret that began with a
real token's lookup characters cost the server 80 ms, a lever for anyone to keep its cores busy. Tokens made by an
older reidkit (200 000 rounds) still verify, and are re-hashed with one round the first time they do; until then the
per-address limit on failed authentications (``limits.RateLimiter``) bounds what wrong tries can cost.
``TokenVerifier`` remembers, in memory only, which secrets it has verified (keyed by their SHA-256) and re-reads just
the token's row each time, so a revoked or expired token is refused on its very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path

from reidkit.errors import ConfigError
from reidkit.service.audit import record_cli
from reidkit.service.service_db import connect

PREFIX = "rk_"
_LOOKUP_CHARS = 8
_ITERATIONS = 1  # see the module docstring
_DURATION_UNITS = {"d": "days", "h": "hours"}


class Role(IntEnum):
    viewer = 1
    operator = 2
    admin = 3

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text]
        except KeyError:
            raise ConfigError(f"--role {text!r}: use viewer, operator or admin") from None


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token's id, name and role."""

    token_id: int
    name: str
    role: Role


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: Role
    created_at: str
    revoked_at: str | None
    expires_at: str | None = None


def parse_duration(text: str, option: str = "--expires") -> timedelta:
    """``90d`` or ``12h``: a token's lifetime, a positive whole number of days or hours."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in _DURATION_UNITS or not value.isdigit() or not 0 < int(value) <= 100_000:
        raise ConfigError(f"{option} {text!r} must be a whole number of days or hours, e.g. 90d or 12h")
    return timedelta(**{_DURATION_UNITS[unit]: int(value)})


def create_token(db: Path, role: Role, name: str, lifetime: timedelta | None = None) -> tuple[TokenInfo, str]:
    """A new token for ``role`` (refused from ``lifetime`` after now, if given): its row and the secret, which
    exists nowhere else afterwards."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise ConfigError(f"--name {name!r} must be 1 to 100 printable characters")
    secret = PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    created = _now()
    expires = None if lifetime is None else _iso(datetime.now(UTC) + lifetime)
    digest = _hash(secret, salt, _ITERATIONS)
    connection = connect(db)
    connection.execute("BEGIN IMMEDIATE")  # the token and its audit entry, or neither
    try:
        cursor = connection.execute(
            "INSERT INTO tokens(lookup, name, role, salt, hash, iterations, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_lookup(secret), name, role.name, salt, digest, _ITERATIONS, created, expires),
        )
        token_id = int(cursor.lastrowid or 0)
        until = "" if expires is None else f", expires {expires}"
        record_cli(connection, "token.create", f"token {token_id} ({name!r}, {role.name}{until})")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return TokenInfo(token_id, name, role, created, None, expires), secret


def list_tokens(db: Path) -> list[TokenInfo]:
    connection = connect(db)
    rows = connection.execute(
        "SELECT id, name, role, created_at, revoked_at, expires_at FROM tokens ORDER BY id"
    ).fetchall()
    return [TokenInfo(int(i), str(n), Role[str(r)], str(c), v, e) for i, n, r, c, v, e in rows]


def revoke_token(db: Path, token_id: int) -> TokenInfo:
    """Mark token ``token_id`` revoked (kept, so the audit log's entries still name it)."""
    connection = connect(db)
    updated = connection.execute(
        "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), token_id)
    ).rowcount
    if updated:
        record_cli(connection, "token.revoke", f"token {token_id}")
    found = {token.id: token for token in list_tokens(db)}
    if token_id not in found:
        raise ConfigError(f"no token {token_id} in {db}; `reidkit token list --db {db}` shows them")
    return found[token_id]


def verify(db: Path, secret: str) -> Caller | None:
    """The caller ``secret`` belongs to, or None when it is unknown, wrong, revoked or expired."""
    return TokenVerifier(db).verify(secret)


class TokenVerifier:
    """``verify`` for a server: PBKDF2 once per secret and process, one indexed row read per request."""

    def __init__(self, db: Path) -> None:
        self.db = Path(db)
        self._verified: dict[bytes, int] = {}  # sha256(secret) -> token id
        self._lock = threading.Lock()

    def verify(self, secret: str) -> Caller | None:
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        key = hashlib.sha256(secret.encode()).digest()
        with self._lock:
            known = self._verified.get(key)
        connection = connect(self.db)
        if known is not None:
            row = connection.execute(
                "SELECT id, name, role, revoked_at, expires_at FROM tokens WHERE id = ?", (known,)
            ).fetchone()
            return _caller(row)
        row = connection.execute(
            "SELECT id, name, role, revoked_at, expires_at, salt, hash, iterations FROM tokens WHERE lookup = ?",
            (_lookup(secret),),
        ).fetchone()
        if row is None or not hmac.compare_digest(_hash(secret, row[5], int(row[7])), row[6]):
            return None
        if int(row[7]) != _ITERATIONS:  # an older token: re-hashed now that its secret is at hand
            connection.execute("UPDATE tokens SET hash = ?, iterations = ? WHERE id = ?",
                               (_hash(secret, row[5], _ITERATIONS), _ITERATIONS, row[0]))
        with self._lock:
            self._verified[key] = int(row[0])
        return _caller(row)


def token_caller(db: Path, token_id: int) -> Caller | None:
    """The caller of token ``token_id`` as it stands now: None once it is revoked or past its expiry (a long-lived
    request, the alert stream, asks again while it runs)."""
    row = connect(db).execute("SELECT id, name, role, revoked_at, expires_at FROM tokens WHERE id = ?",
                              (token_id,)).fetchone()
    return _caller(row)


def _caller(row: sqlite3.Row | tuple[object, ...] | None) -> Caller | None:
    """The row's caller, unless the token is revoked or past its expiry."""
    if row is None or row[3] is not None or (row[4] is not None and str(row[4]) <= _now()):
        return None
    return Caller(int(row[0]), str(row[1]), Role[str(row[2])])  # type: ignore[call-overload]


def _lookup(secret: str) -> str:
    return secret[len(PREFIX) : len(PREFIX) + _LOOKUP_CHARS]


def _hash(secret: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    """UTC to the second: such strings sort as the moments they name, so SQL and Python compare them as text."""
    return moment.isoformat(timespec="seconds")
