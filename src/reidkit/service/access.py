"""Who may do what: bearer tokens with a role, stored only as salted hashes.

Roles are ordered, each including the ones below it: a **viewer** searches and views crops, frames and tracks; an
**operator** also ingests and deletes videos; an **admin** also reads the audit log, purges old footage and manages
tokens. A token's secret (``rk_`` + 43 URL-safe characters, 256 random bits) is shown once, when it is made; the
database keeps a random salt, PBKDF2-HMAC-SHA256 of the secret, and the secret's first characters (``lookup``) to find
the row without trying every hash. Those characters are a few bits of the 256, so the row says nothing useful about
the rest.

PBKDF2 costs tens of milliseconds on purpose (a stolen database is slow to attack), too much for every request of a
busy client: ``TokenVerifier`` remembers, in memory only, which secrets it has verified (keyed by their SHA-256) and
re-reads just the token's row each time, so a revoked token is refused on its very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path

from reidkit.errors import ConfigError
from reidkit.service.audit import record_cli
from reidkit.service.service_db import connect

PREFIX = "rk_"
_LOOKUP_CHARS = 8
_ITERATIONS = 200_000


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


def create_token(db: Path, role: Role, name: str) -> tuple[TokenInfo, str]:
    """A new token for ``role``: its row and the secret, which exists nowhere else afterwards."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise ConfigError(f"--name {name!r} must be 1 to 100 printable characters")
    secret = PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    created = _now()
    digest = _hash(secret, salt, _ITERATIONS)
    connection = connect(db)
    connection.execute("BEGIN IMMEDIATE")  # the token and its audit entry, or neither
    try:
        cursor = connection.execute(
            "INSERT INTO tokens(lookup, name, role, salt, hash, iterations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (_lookup(secret), name, role.name, salt, digest, _ITERATIONS, created),
        )
        token_id = int(cursor.lastrowid or 0)
        record_cli(connection, "token.create", f"token {token_id} ({name!r}, {role.name})")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return TokenInfo(token_id, name, role, created, None), secret


def list_tokens(db: Path) -> list[TokenInfo]:
    connection = connect(db)
    rows = connection.execute("SELECT id, name, role, created_at, revoked_at FROM tokens ORDER BY id").fetchall()
    return [TokenInfo(int(i), str(n), Role[str(r)], str(c), None if v is None else str(v)) for i, n, r, c, v in rows]


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
    """The caller ``secret`` belongs to, or None when it is unknown, wrong or revoked."""
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
                "SELECT id, name, role, revoked_at FROM tokens WHERE id = ?", (known,)
            ).fetchone()
            return _caller(row)
        row = connection.execute(
            "SELECT id, name, role, revoked_at, salt, hash, iterations FROM tokens WHERE lookup = ?",
            (_lookup(secret),),
        ).fetchone()
        if row is None or not hmac.compare_digest(_hash(secret, row[4], int(row[6])), row[5]):
            return None
        with self._lock:
            self._verified[key] = int(row[0])
        return _caller(row)


def _caller(row: sqlite3.Row | tuple[object, ...] | None) -> Caller | None:
    if row is None or row[3] is not None:
        return None
    return Caller(int(row[0]), str(row[1]), Role[str(row[2])])  # type: ignore[call-overload]


def _lookup(secret: str) -> str:
    return secret[len(PREFIX) : len(PREFIX) + _LOOKUP_CHARS]


def _hash(secret: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
