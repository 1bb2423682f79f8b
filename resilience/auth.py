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

A token may expire (`expires_ts`): past it, a lookup finds it expired (the API answers
401 and audits it). `last_used_ts` is written by `record_use`, which the API calls at
most once a minute for all the tokens used since (`TokenUses`), never per request.
`rotate` revokes a live token and makes its successor (same name and role, a new
secret) in one transaction.

Table (ts = Unix seconds):

    tokens  id INTEGER PK, name TEXT, role TEXT, hash TEXT UNIQUE (sha256 hex),
            created_ts REAL, created_by TEXT, revoked_ts REAL NULL, revoked_by TEXT NULL,
            expires_ts REAL NULL, last_used_ts REAL NULL
            unique index on name WHERE revoked_ts IS NULL

The last two columns came with token lifetimes: a file made before them gets them
added (ALTER TABLE ... ADD COLUMN, NULL in every existing row: no expiry, never used
since) the first time a TokenStore opens it; no row changes otherwise.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

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
    """Who is calling: the token's name and its role (and its row, for its last use)."""

    name: str
    role: str
    token_id: int | None = field(default=None, compare=False)

    def allows(self, needed: str) -> bool:
        return role_allows(self.role, needed)


@dataclass(frozen=True)
class Expired:
    """A live token past its expiry: refused, but the refusal names whose it was."""

    principal: Principal
    expires_ts: float


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    created_ts: float
    created_by: str
    revoked_ts: float | None
    revoked_by: str | None
    expires_ts: float | None = None
    last_used_ts: float | None = None


MAX_LIFETIME_S = 10 * 365 * 86400
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `3600s` in seconds [s]; at least a minute, at most ten
    years."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise TokenError(
            f"expires: {text!r} is not a duration (a number and a unit: 90m, 12h, 30d, 2w)"
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not 60 <= seconds <= MAX_LIFETIME_S:
        raise TokenError(f"expires: {text!r} must be between 1 minute and 10 years")
    return seconds


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


def _check_lifetime(expires_s: float | None) -> None:
    if expires_s is not None and not 60 <= expires_s <= MAX_LIFETIME_S:
        raise TokenError("expires: a lifetime must be between 1 minute and 10 years")


class TokenUses:
    """Coalesces the API's record of last use: each request notes its token here (in
    memory), and at most once per `interval_s` [s] the tokens used since are handed out
    to be written in one transaction (`TokenStore.record_use`), off the request. Also
    bounds the audit of expired tokens: once per `interval_s` per token."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._pending: dict[int, float] = {}
        self._flushed_at: float | None = None
        self._expired_audited: dict[int, float] = {}

    def seen(self, token_id: int, now: float) -> dict[int, float] | None:
        """Note a use; returns the batch to write when one is due, else None."""
        self._pending[token_id] = max(now, self._pending.get(token_id, now))
        if self._flushed_at is not None and now - self._flushed_at < self.interval_s:
            return None
        return self.take(now)

    def take(self, now: float) -> dict[int, float]:
        """Every use noted since the last batch (and start a new interval)."""
        batch, self._pending = self._pending, {}
        self._flushed_at = now
        return batch

    def audit_expired(self, token_id: int, now: float) -> bool:
        """Whether this refusal of an expired token is to be audited (once per interval)."""
        last = self._expired_audited.get(token_id)
        if last is not None and now - last < self.interval_s:
            return False
        self._expired_audited[token_id] = now
        return True


_COLUMNS = {
    "id", "name", "role", "hash", "created_ts", "created_by", "revoked_ts", "revoked_by",
    "expires_ts", "last_used_ts",
}  # fmt: skip


class TokenStore:
    """The tokens table of one site's SQLite file."""

    def __init__(self, path: str | Path, *, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._timeout_s = timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._open()
        try:
            if self._columns(db) >= _COLUMNS:
                return  # up to date: no write lock taken (the API and the CLI open it often)
            db.execute("PRAGMA journal_mode = WAL")
            # one writer at a time: two processes opening an old file migrate it once
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "CREATE TABLE IF NOT EXISTS tokens ("
                " id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
                " hash TEXT NOT NULL UNIQUE, created_ts REAL NOT NULL,"
                " created_by TEXT NOT NULL, revoked_ts REAL, revoked_by TEXT,"
                " expires_ts REAL, last_used_ts REAL)"
            )
            columns = self._columns(db)
            for column in ("expires_ts", "last_used_ts"):
                if column not in columns:
                    db.execute(f"ALTER TABLE tokens ADD COLUMN {column} REAL")
            db.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS tokens_live_name"
                " ON tokens(name) WHERE revoked_ts IS NULL"
            )
            db.execute("COMMIT")
        finally:
            db.close()

    @staticmethod
    def _columns(db: sqlite3.Connection) -> set[str]:
        return {str(row[1]) for row in db.execute("PRAGMA table_info(tokens)").fetchall()}

    def _open(self) -> sqlite3.Connection:
        """A write connection in autocommit mode (transactions begin explicitly)."""
        return sqlite3.connect(str(self.path), timeout=self._timeout_s, isolation_level=None)

    def _reader(self) -> sqlite3.Connection:
        """One read connection per thread, kept: a lookup runs on every request."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=self._timeout_s)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
        return conn

    # ------------------------------------------------------------------ changes
    def create(
        self,
        name: str,
        role: str,
        *,
        by: str,
        now: float | None = None,
        expires_s: float | None = None,
    ) -> str:
        """A new token for `name` with `role`, valid for `expires_s` [s] (None: until
        revoked); returns the token, which is never stored."""
        check_name(name)
        checked = check_role(role)
        _check_lifetime(expires_s)
        token = secrets.token_urlsafe(32)
        now = time.time() if now is None else now
        expires = None if expires_s is None else now + expires_s
        db = self._open()
        try:
            db.execute(
                "INSERT INTO tokens (name, role, hash, created_ts, created_by, expires_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [name, checked, hash_token(token), now, by, expires],
            )
        except sqlite3.IntegrityError:
            raise TokenError(
                f"name: a live token named {name!r} exists (revoke it first)"
            ) from None
        finally:
            db.close()
        return token

    def rotate(
        self, name: str, *, by: str, now: float | None = None, expires_s: float | None = None
    ) -> tuple[str, TokenInfo]:
        """Revoke the live token `name` and make its successor (same name and role, a new
        secret) in one transaction; returns the new token and its row. The successor
        lives `expires_s` [s], or as long as the old one was given, or until revoked."""
        _check_lifetime(expires_s)
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        db = self._open()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    "SELECT id, role, created_ts, expires_ts FROM tokens"
                    " WHERE name = ? AND revoked_ts IS NULL",
                    [name],
                ).fetchall()
                if not rows:
                    raise TokenError(f"name: no live token named {name!r}")
                old_id, role, created, old_expires = rows[0]
                if expires_s is None and old_expires is not None:
                    expires_s = max(60.0, float(old_expires) - float(created))
                expires = None if expires_s is None else now + expires_s
                db.execute(
                    "UPDATE tokens SET revoked_ts = ?, revoked_by = ? WHERE id = ?",
                    [now, by, old_id],
                )
                db.execute(
                    "INSERT INTO tokens (name, role, hash, created_ts, created_by, expires_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [name, role, hash_token(token), now, by, expires],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()
        return token, TokenInfo(name, str(role), now, by, None, None, expires, None)

    def record_use(self, used: dict[int, float]) -> None:
        """Write each token's last use [Unix s] (token id -> time), in one transaction; a
        time older than the one stored is ignored."""
        if not used:
            return
        db = self._open()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "UPDATE tokens SET last_used_ts = ?"
                " WHERE id = ? AND (last_used_ts IS NULL OR last_used_ts < ?)",
                [(ts, token_id, ts) for token_id, ts in used.items()],
            )
            db.execute("COMMIT")
        finally:
            db.close()

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
    def check(self, token: str, now: float | None = None) -> Principal | Expired | None:
        """The live token's name and role; Expired past its expiry; None when unknown,
        revoked or malformed."""
        if not _TOKEN_RE.match(token):
            return None
        digest = hash_token(token)
        rows = (  # fetchall: the statement completes, so no read transaction stays open
            self._reader()
            .execute(
                "SELECT name, role, hash, id, expires_ts FROM tokens"
                " WHERE hash = ? AND revoked_ts IS NULL",
                [digest],
            )
            .fetchall()
        )
        row = rows[0] if rows else None
        if row is None or not hmac.compare_digest(str(row[2]), digest):
            return None
        principal = Principal(str(row[0]), str(row[1]), int(row[3]))
        if row[4] is not None and float(row[4]) <= (time.time() if now is None else now):
            return Expired(principal, float(row[4]))
        return principal

    def lookup(self, token: str, now: float | None = None) -> Principal | None:
        """The live, unexpired token's name and role, or None."""
        found = self.check(token, now)
        return found if isinstance(found, Principal) else None

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        where = "" if include_revoked else " WHERE revoked_ts IS NULL"
        rows = (
            self._reader()
            .execute(
                "SELECT name, role, created_ts, created_by, revoked_ts, revoked_by,"
                f" expires_ts, last_used_ts FROM tokens{where} ORDER BY id"
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
