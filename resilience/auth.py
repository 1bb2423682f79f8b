"""API tokens: who may do what, kept hashed in the site's SQLite file.

Four roles, each one allowing everything the one before it does:

    viewer      status only: what a shelter's public screen shows
    responder   emergency services: also reads loads, vehicles, events, alarms and the
                EDXL-HAVE export; registers and releases donor vehicles; requests a
                planned island
    operator    every command (shed, restore, tiers, reconnect, alarms...)
    admin       also manages tokens

A token is `secrets.token_urlsafe(32)` (32 random bytes, 43 characters). Only its
SHA-256 is stored, in the `tokens` table of the same SQLite file the controller's
`Store` writes; the table is created here, idempotently, outside the Store's
schema versioning (the Store never touches it). Lookups run per request with no
cache, so a token created or revoked from the command line while the controller
runs takes effect at once. Names are unique among live tokens; a revoked row is
kept, with its revocation time, as part of the record.

Table (ts = Unix seconds):

    tokens  id INTEGER PK, name TEXT, role TEXT, hash TEXT UNIQUE (sha256 hex),
            created_ts REAL, created_by TEXT, revoked_ts REAL NULL, revoked_by TEXT NULL
            unique index on name WHERE revoked_ts IS NULL

Reads and writes touch the disk: from asyncio, call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from sqlite_utils import Database

Role = Literal["viewer", "responder", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_RANK = {role: rank for rank, role in enumerate(ROLES)}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,200}$")


class TokenError(ValueError):
    """A token request that cannot be done; the message names the field and why."""


def role_allows(role: str, needed: str) -> bool:
    """Whether `role` may do what `needed` may (roles are ordered viewer < ... < admin)."""
    return role in _RANK and needed in _RANK and _RANK[role] >= _RANK[needed]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and its role."""

    name: str
    role: str

    def allows(self, needed: str) -> bool:
        return role_allows(self.role, needed)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_ts: float
    created_by: str
    revoked_ts: float | None
    revoked_by: str | None


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise TokenError(
            f"name: {name!r} must be 1-64 characters of letters, digits, '_', '.', '@' or '-',"
            " starting with a letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise TokenError(f"role: unknown role {role!r} (expected one of: {', '.join(ROLES)})")


class TokenStore:
    """The tokens table of one site's SQLite file."""

    def __init__(self, path: str | Path, *, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._timeout_s = timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._open()
        try:
            db.enable_wal()
            db.execute(
                "CREATE TABLE IF NOT EXISTS tokens ("
                " id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
                " hash TEXT NOT NULL UNIQUE, created_ts REAL NOT NULL,"
                " created_by TEXT NOT NULL, revoked_ts REAL, revoked_by TEXT)"
            )
            db.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS tokens_live_name"
                " ON tokens(name) WHERE revoked_ts IS NULL"
            )
            db.conn.commit()
        finally:
            db.close()

    def _open(self) -> Database:
        conn = sqlite3.connect(str(self.path), timeout=self._timeout_s, isolation_level=None)
        return Database(conn, execute_plugins=False)

    def _reader(self) -> sqlite3.Connection:
        """One read connection per thread, kept: a lookup runs on every request."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=self._timeout_s)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
        return conn

    # ------------------------------------------------------------------ changes
    def create(self, name: str, role: str, *, by: str, now: float | None = None) -> str:
        """A new token for `name` with `role`; returns the token, which is never stored."""
        check_name(name)
        checked = check_role(role)
        token = secrets.token_urlsafe(32)
        db = self._open()
        try:
            db.execute(
                "INSERT INTO tokens (name, role, hash, created_ts, created_by)"
                " VALUES (?, ?, ?, ?, ?)",
                [name, checked, hash_token(token), time.time() if now is None else now, by],
            )
        except sqlite3.IntegrityError:
            raise TokenError(
                f"name: a live token named {name!r} exists (revoke it first)"
            ) from None
        finally:
            db.close()
        return token

    def revoke(self, name: str, *, by: str, now: float | None = None) -> bool:
        """Revoke the live token named `name`; False when there is none."""
        db = self._open()
        try:
            cursor = db.execute(
                "UPDATE tokens SET revoked_ts = ?, revoked_by = ?"
                " WHERE name = ? AND revoked_ts IS NULL",
                [time.time() if now is None else now, by, name],
            )
            return cursor.rowcount == 1
        finally:
            db.close()

    # ------------------------------------------------------------------ reads
    def lookup(self, token: str) -> Principal | None:
        """The live token's name and role, or None (unknown, revoked or malformed)."""
        if not _TOKEN_RE.match(token):
            return None
        digest = hash_token(token)
        rows = (  # fetchall: the statement completes, so no read transaction stays open
            self._reader()
            .execute(
                "SELECT name, role, hash FROM tokens WHERE hash = ? AND revoked_ts IS NULL",
                [digest],
            )
            .fetchall()
        )
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(str(row[2]), digest):
            return None
        return Principal(str(row[0]), str(row[1]))

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        where = "" if include_revoked else " WHERE revoked_ts IS NULL"
        rows = (
            self._reader()
            .execute(
                "SELECT name, role, created_ts, created_by, revoked_ts, revoked_by"
                f" FROM tokens{where} ORDER BY id"
            )
            .fetchall()
        )
        return [TokenInfo(*row) for row in rows]

    def close(self) -> None:
        """Close this thread's read connection (others close when their thread ends)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
