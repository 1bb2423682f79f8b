"""The controller's durable memory: events, the command audit trail, alarms, telemetry, state.

Safety rule 6 says nothing that was acknowledged is lost, so an event or a command is
reported done only after its SQLite transaction has committed. Rule two of the control
loop says it never blocks on disk. This module reconciles the two: every write is a
non-blocking enqueue that returns a `concurrent.futures.Future`; one writer thread
batches whatever is queued into one transaction, commits it, and only then completes
the futures. An asyncio caller that must acknowledge something awaits
`Store.committed(future)`; everything else fires and forgets.

Tables (ts = Unix seconds, UTC, as a float; JSON columns hold UTF-8 JSON text):

    meta            key TEXT PK, value TEXT
                    "schema_version" -> integer as text; migrations run by version
    events          id INTEGER PK, ts REAL, kind TEXT, mode_from TEXT NULL,
                    mode_to TEXT NULL, trigger TEXT NULL, reason TEXT, data TEXT (JSON object)
                    what happened and why: mode transitions, sheds, trips, operator decisions
    commands        id INTEGER PK, ts REAL, actor TEXT, role TEXT, command TEXT,
                    args TEXT (JSON object), outcome TEXT, detail TEXT,
                    count INTEGER (1), last_ts REAL NULL
                    the audit trail: who asked for what, and what came of it. Refusals
                    (any outcome but "accepted") are coalesced, see below
    alarms          id INTEGER PK, code TEXT, severity TEXT, message TEXT, raised_ts REAL,
                    cleared_ts REAL NULL, acked_ts REAL NULL, acked_by TEXT NULL
                    at most one uncleared row per code (a partial unique index enforces it)
    telemetry_keys  id INTEGER PK, key TEXT UNIQUE
                    a series name "<device>.<quantity>_<unit>", e.g. "charger_1.soc_pct";
                    the unit is the key's suffix, as everywhere in the project
    telemetry       key_id INTEGER, ts REAL, value REAL, PK (key_id, ts), WITHOUT ROWID
                    one sample of one series, in the unit its key names; a second sample
                    with the same key and ts replaces the first
    state           key TEXT PK, value TEXT (JSON), updated_ts REAL
                    what the controller needs to resume after a restart (operator
                    decisions, registered donor vehicles...)
    outbox          seq INTEGER PK AUTOINCREMENT, ts REAL, kind TEXT ("event" or
                    "telemetry"), body TEXT (JSON object)
                    the city layer's store and forward (a site with [fleet] only): what
                    the EOC has not acknowledged yet. `seq` is the site's sequence number,
                    never reused (AUTOINCREMENT), also after the rows before it are gone

Outbox: with ``outbox_max_rows`` set, every event, alarm raised or cleared and accepted
command also gets an outbox row in the same transaction as its own row, so what is
recorded locally is also queued for the EOC, or neither. `outbox_ack(seq)` deletes the
rows up to the EOC's acknowledgement. Beyond ``outbox_max_rows`` rows the oldest
telemetry rows go first, then the oldest events; the first drop since the last
acknowledgement records an event (kind "fleet") that says so, and the state key
"fleet_outbox_dropped" counts what went.

Refusals: a command that was not accepted (forbidden, rejected, refused...) costs at most
one row per repeat and minute. Exact repeats (same actor, role, command, args, outcome,
detail) within one wall-clock minute add to the first one's `count` and `last_ts`;
past `REFUSAL_ROWS_PER_MINUTE` distinct refusals of one actor in a minute, the rest
of that minute go into one row per outcome with command `*`. So a token that keeps
calling what it may not adds a bounded number of rows per minute, whatever it sends,
and `prune_refusals` deletes the old ones. Accepted commands get a row each, always.

Durability: the database runs in WAL mode with ``synchronous=FULL`` on the writer's
connection, so a commit has reached the disk (as far as the disk's flush is honest)
before any future completes. WAL with ``synchronous=NORMAL`` would already survive a
killed process, but it may lose the last transactions on power loss; FULL costs one
fsync per commit, which batching makes cheap (a second of telemetry is one commit).

Failure: a write that fails with `sqlite3.OperationalError` (database locked, disk I/O
error, disk full) keeps its whole batch in memory, marks the store unhealthy and
retries with a doubling back-off. Futures complete only once their batch commits, so
nothing is reported done that is not on disk, and nothing queued is lost while the
process lives. Telemetry is the one exception: beyond ``max_telemetry_backlog`` queued
samples the oldest are dropped; events, commands, alarms and state never are. The
failure is logged once and its recovery once, not on every retry.

Threads: the writer thread owns the only writing connection. Reads open their own
short-lived connection per call (sqlite3 connections belong to one thread), so they
are safe from any thread, also while the writer writes; WAL lets them read the last
committed state without waiting for it. Reads touch the disk: from asyncio, call them
through `asyncio.to_thread`.

Memory: the writer's connection lives as long as the store, and its page cache is bounded
at `WRITER_CACHE_KIB` (smaller than SQLite's default), so that a store that keeps growing
does not keep the controller's memory growing; a reader's cache goes with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "SCHEMA_VERSION",
    "AlarmRecord",
    "CommandRecord",
    "EventRecord",
    "OutboxRow",
    "Store",
    "StoreClosedError",
    "StoreError",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

WRITER_THREAD_NAME = "resilience-store-writer"

ACCEPTED = "accepted"
"""The one command outcome that is never coalesced nor pruned."""
REFUSAL_ROWS_PER_MINUTE = 10
"""Distinct refusal rows one actor may add in a minute; the rest of the minute's refusals
are counted in one row per outcome (command `OVERFLOW_COMMAND`)."""
OVERFLOW_COMMAND = "*"


OUTBOX_DROPPED_KEY = "fleet_outbox_dropped"
"""State key: {"telemetry": n, "events": n, "overflowing": bool} of the outbox's drops."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outbox row: the site's sequence number, when, what kind, and the body."""

    seq: int
    ts: float
    kind: str  # "event" or "telemetry"
    body: dict[str, Any]


class StoreError(Exception):
    """The database cannot be used as asked (for example it is newer than this software)."""


class StoreClosedError(StoreError):
    """A write was asked of a closed store, or was still queued when `close()` gave up."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Something that happened, and why. ``ts`` in Unix seconds."""

    id: int
    ts: float
    kind: str
    mode_from: str | None
    mode_to: str | None
    trigger: str | None
    reason: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command as the audit trail keeps it: who, in which role, what, and the outcome."""

    id: int
    ts: float
    actor: str
    role: str
    command: str
    args: dict[str, Any]
    outcome: str
    detail: str
    count: int = 1
    """How many calls this row stands for (refusals are coalesced; see the module doc)."""
    last_ts: float | None = None
    """The last of them, when count > 1."""


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """An alarm's life: raised, possibly cleared, possibly acknowledged. Times in Unix seconds."""

    id: int
    code: str
    severity: str
    message: str
    raised_ts: float
    cleared_ts: float | None
    acked_ts: float | None
    acked_by: str | None


# --- schema ---------------------------------------------------------------------------


def _migrate_to_v1(db: sqlite3.Connection) -> None:
    """The first schema: every table of the module docstring.

    The statements are those sqlite-utils wrote when it made this schema (the store used it
    until the controller stopped importing it: it imports numpy when numpy is installed),
    word for word, so that old and new databases have one schema (tests/test_store.py)."""
    for statement in _V1_SCHEMA:
        db.execute(statement)


_V1_SCHEMA = (
    'CREATE TABLE "events" (\n'
    '   "id" INTEGER PRIMARY KEY,\n'
    '   "ts" REAL NOT NULL,\n'
    '   "kind" TEXT NOT NULL,\n'
    '   "mode_from" TEXT,\n'
    '   "mode_to" TEXT,\n'
    '   "trigger" TEXT,\n'
    '   "reason" TEXT NOT NULL,\n'
    '   "data" TEXT NOT NULL\n'
    ")",
    'CREATE INDEX "events_ts"\n    ON "events" ("ts")',
    'CREATE INDEX "events_kind_ts"\n    ON "events" ("kind", "ts")',
    'CREATE TABLE "commands" (\n'
    '   "id" INTEGER PRIMARY KEY,\n'
    '   "ts" REAL NOT NULL,\n'
    '   "actor" TEXT NOT NULL,\n'
    '   "role" TEXT NOT NULL,\n'
    '   "command" TEXT NOT NULL,\n'
    '   "args" TEXT NOT NULL,\n'
    '   "outcome" TEXT NOT NULL,\n'
    '   "detail" TEXT NOT NULL\n'
    ")",
    'CREATE INDEX "commands_ts"\n    ON "commands" ("ts")',
    'CREATE TABLE "alarms" (\n'
    '   "id" INTEGER PRIMARY KEY,\n'
    '   "code" TEXT NOT NULL,\n'
    '   "severity" TEXT NOT NULL,\n'
    '   "message" TEXT NOT NULL,\n'
    '   "raised_ts" REAL NOT NULL,\n'
    '   "cleared_ts" REAL,\n'
    '   "acked_ts" REAL,\n'
    '   "acked_by" TEXT\n'
    ")",
    # "One active alarm per code" is a property of the data, not only of the code that
    # writes it.
    "CREATE UNIQUE INDEX alarms_active_code ON alarms(code) WHERE cleared_ts IS NULL",
    'CREATE TABLE "telemetry_keys" (\n   "id" INTEGER PRIMARY KEY,\n   "key" TEXT NOT NULL\n)',
    'CREATE UNIQUE INDEX "telemetry_keys_key"\n    ON "telemetry_keys" ("key")',
    # WITHOUT ROWID: the table is its own (key_id, ts) index, which halves its size for
    # the one query it serves (one series over a time range).
    "CREATE TABLE telemetry ("
    " key_id INTEGER NOT NULL REFERENCES telemetry_keys(id),"
    " ts REAL NOT NULL,"
    " value REAL NOT NULL,"
    " PRIMARY KEY (key_id, ts)"
    ") WITHOUT ROWID",
    'CREATE TABLE "state" (\n'
    '   "key" TEXT PRIMARY KEY,\n'
    '   "value" TEXT NOT NULL,\n'
    '   "updated_ts" REAL NOT NULL\n'
    ")",
)


def _migrate_to_v2(db: sqlite3.Connection) -> None:
    """Coalesced refusals: a count and the last call's time per command row, and an index
    to find an actor's rows of one minute."""
    db.execute("ALTER TABLE commands ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE commands ADD COLUMN last_ts REAL")
    db.execute('CREATE INDEX "commands_actor_ts"\n    ON "commands" ("actor", "ts")')


def _migrate_to_v3(db: sqlite3.Connection) -> None:
    """The city layer's outbox (store and forward to the EOC)."""
    db.execute(
        "CREATE TABLE outbox ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " ts REAL NOT NULL,"
        " kind TEXT NOT NULL CHECK (kind IN ('event', 'telemetry')),"
        " body TEXT NOT NULL"
        ")"
    )
    db.execute("CREATE INDEX outbox_kind_seq ON outbox (kind, seq)")


# Migration N (1-based) brings the schema from version N-1 to N. Append, never edit.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_to_v1,
    _migrate_to_v2,
    _migrate_to_v3,
)
SCHEMA_VERSION = len(_MIGRATIONS)


WRITER_CACHE_KIB = 512
"""[KiB] the writer connection's page cache (SQLite's default is 2000 KiB). The cache keeps
every page it has touched, up to its size, and telemetry touches new pages as its table
grows: with the default, the controller's memory grew for hours (about 0.2 MB per 10
minutes on the reference site) before the cache was full. A commit's working set is one
leaf page per telemetry series and the interior pages above them (about 90 pages of
4 KiB on the reference site); a page beyond the cache is read again from the OS's file
cache, which the kernel gives back under memory pressure."""


def _open(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode: a statement outside ``BEGIN`` ... ``COMMIT`` commits
    by itself, and the store begins every transaction it needs explicitly."""
    return sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)


def _schema_version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def _prepare(path: Path, timeout_s: float) -> None:
    """Create or upgrade the schema; refuse a database written by newer software.

    Runs once, in the constructor, before any thread exists: startup may block, the
    control loop may not. Each migration and its version bump commit together, under
    ``BEGIN IMMEDIATE`` so two processes opening the same file cannot both migrate it.
    """
    db = _open(path, timeout_s)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(
            'CREATE TABLE IF NOT EXISTS "meta" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT\n)'
        )
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _schema_version(db)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: schema version {version} is newer than this software "
                    f"understands ({SCHEMA_VERSION}); refusing to write to it"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[target - 1](db)
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    [str(target)],
                )
                _log.info("store %s: schema migrated to version %d", path, target)
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    finally:
        db.close()


# --- the queue -------------------------------------------------------------------------

_Sample = tuple[float, str, float]  # (ts [s], key, value [unit of the key])


@dataclass(eq=False, slots=True)
class _Op:
    """One durable write: applied inside the writer's transaction, settled after COMMIT."""

    apply: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


@dataclass(eq=False, slots=True)
class _Batch:
    """What the writer took off the queue; what is left of it after a failure goes back."""

    ops: deque[_Op]
    samples: list[_Sample]
    done: list[tuple[_Op, Any, BaseException | None]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.ops) + len(self.samples)


def _settle(future: Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete a future unless its waiter cancelled it (the write happened regardless)."""
    if future.done():
        return
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _audit_json(value: Mapping[str, Any]) -> str:
    """JSON for events and commands. Losing an audit record over one odd field is worse
    than keeping that field as its ``str()``, so unknown types do not raise."""
    return json.dumps(dict(value), separators=(",", ":"), default=str)


# --- the store -------------------------------------------------------------------------


class Store:
    """Durable, non-blocking storage for one site controller (see the module docstring).

    Lifecycle: construct (creates or migrates the file), `start()` the writer, write and
    read, `close()`. Writes may be queued before `start()`; they commit once it runs.
    Also a context manager: ``with Store(path) as store:`` starts and closes it.

    Tuning, all keyword-only:
      backoff_initial_s, backoff_max_s  retry delay after a failed write, doubling [s]
      busy_timeout_s                    how long one write attempt waits on a lock [s]
      telemetry_flush_s                 how long telemetry may wait for a commit [s]
      telemetry_batch_samples           commit early once this many samples are queued
      max_telemetry_backlog             queued samples kept while the disk fails; older drop
      on_health_change                  called with the new `healthy` value from the
                                        writer thread; must not block
      outbox_max_rows                   None (default): no outbox rows; else the outbox
                                        (module docstring) keeps at most this many
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        busy_timeout_s: float = 0.1,
        read_timeout_s: float = 2.0,
        telemetry_flush_s: float = 1.0,
        telemetry_batch_samples: int = 10_000,
        max_telemetry_backlog: int = 100_000,
        on_health_change: Callable[[bool], None] | None = None,
        outbox_max_rows: int | None = None,
    ) -> None:
        if str(path) == ":memory:":
            raise ValueError("Store needs a file: the writer and readers use separate connections")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        if telemetry_batch_samples < 1 or max_telemetry_backlog < 1:
            raise ValueError("telemetry_batch_samples and max_telemetry_backlog must be >= 1")
        if outbox_max_rows is not None and outbox_max_rows < 2:
            raise ValueError("outbox_max_rows must be >= 2 (or None: no outbox)")
        self._outbox_max_rows = outbox_max_rows
        self._outbox_listeners: list[Callable[[], None]] = []
        self._path = Path(path)
        self._clock = clock
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._busy_timeout_s = busy_timeout_s
        self._read_timeout_s = read_timeout_s
        self._telemetry_flush_s = telemetry_flush_s
        self._telemetry_batch_samples = telemetry_batch_samples
        self._on_health_change = on_health_change

        self._path.parent.mkdir(parents=True, exist_ok=True)
        _prepare(self._path, timeout_s=max(read_timeout_s, 5.0))

        # Shared with the writer thread, guarded by _cond's lock.
        self._cond = threading.Condition()
        self._ops: deque[_Op] = deque()
        self._telemetry: deque[_Sample] = deque(maxlen=max_telemetry_backlog)
        self._telemetry_since = 0.0  # monotonic time the oldest queued sample arrived
        self._in_flight = 0
        self._retry_due = False
        self._closed = False
        self._stopping = False
        self._dropped_telemetry = 0
        self._drop_logged = False

        # Written by the writer thread only; read anywhere (single attribute reads).
        self._healthy = True
        self._commits = 0
        self._failing_since = 0.0
        self._flushed = False
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None

        # Writer-thread only.
        self._db: sqlite3.Connection | None = None
        self._key_ids: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread. Idempotent."""
        with self._cond:
            if self._closed:
                raise StoreClosedError(f"store {self._path} is closed")
            self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=WRITER_THREAD_NAME, daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> bool:
        """Commit everything queued, stop the writer, and say whether all of it was written.

        Waits up to ``timeout`` seconds. If the disk is still failing then, the writer is
        stopped anyway (so no thread outlives the store), the futures still pending fail
        with `StoreClosedError`, and the result is False: those records are lost, and
        the caller knows it. Idempotent; later calls return the first result.
        """
        with self._cond:
            if not self._closed:
                self._closed = True
                self._stopping = True
                if self._ops or self._telemetry:
                    self._start_locked()
                self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self._abandon.set()
                with self._cond:
                    self._cond.notify_all()
                thread.join(self._busy_timeout_s + 1.0)
        self._fail_leftovers()
        return thread is None or self._flushed

    def __enter__(self) -> Store:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writes (any thread, never block on disk) -------------------------------------

    def record_event(
        self,
        kind: str,
        reason: str,
        *,
        mode_from: str | None = None,
        mode_to: str | None = None,
        trigger: str | None = None,
        data: dict[str, Any] | None = None,
        ts: float | None = None,
    ) -> Future[int]:
        """Queue an event; the future gives its id once committed. ``ts`` defaults to now."""
        at = self._now(ts)
        row = {
            "ts": at,
            "kind": kind,
            "mode_from": mode_from,
            "mode_to": mode_to,
            "trigger": trigger,
            "reason": reason,
            "data": _audit_json(data or {}),
        }

        def apply(db: sqlite3.Connection) -> int:
            event_id = _insert(db, "events", row)
            body = {"type": "event", "id": event_id, **row, "data": data or {}}
            self._outbox_add(db, at, "event", body)
            return event_id

        return self._submit_outbox(apply)

    def record_command(
        self,
        actor: str,
        role: str,
        command: str,
        args: dict[str, Any],
        outcome: str,
        detail: str = "",
        ts: float | None = None,
    ) -> Future[int]:
        """Queue an audit record of a command; the future gives its row's id once committed.
        A refusal (`outcome` other than "accepted") may be added to an earlier row of the
        same minute instead (see the module docstring)."""
        at = self._now(ts)
        row = {
            "ts": at,
            "actor": actor,
            "role": role,
            "command": command,
            "args": _audit_json(args),
            "outcome": outcome,
            "detail": detail,
        }
        if outcome == ACCEPTED:

            def apply(db: sqlite3.Connection) -> int:
                command_id = _insert(db, "commands", row)
                body = {"type": "command", "id": command_id, **row, "args": args}
                self._outbox_add(db, at, "event", body)
                return command_id

            return self._submit_outbox(apply)
        return self._submit(lambda db: _coalesce_refusal(db, row))

    def record_headcount(
        self, value: dict[str, Any], actor: str, role: str, detail: str, ts: float | None = None
    ) -> Future[int]:
        """Queue saving the shelter's headcount (state key ``headcount``, `resilience.shelter`)
        and its audit row (command ``set_headcount``, accepted, also an outbox event) in one
        transaction: recorded means both on disk, or neither. The future gives the row's id."""
        json.dumps(value, allow_nan=False)  # plain JSON, or TypeError/ValueError in the caller
        at = self._now(ts)
        args = {"people": value.get("people")}
        row = {
            "ts": at,
            "actor": actor,
            "role": role,
            "command": "set_headcount",
            "args": _audit_json(args),
            "outcome": ACCEPTED,
            "detail": detail,
        }

        def apply(db: sqlite3.Connection) -> int:
            _put_state(db, "headcount", value, at)
            command_id = _insert(db, "commands", row)
            body = {"type": "command", "id": command_id, **row, "args": args}
            self._outbox_add(db, at, "event", body)
            return command_id

        return self._submit_outbox(apply)

    def raise_alarm(
        self, code: str, severity: str, message: str, ts: float | None = None
    ) -> Future[int]:
        """Queue raising an alarm; the future gives its id.

        If an uncleared alarm with this code exists, nothing is written and the future
        gives that alarm's id: a condition that persists for many cycles is one alarm.
        """
        raised_ts = self._now(ts)

        def apply(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT id FROM alarms WHERE code = ? AND cleared_ts IS NULL", [code]
            ).fetchone()
            if row is not None:
                return int(row[0])
            alarm = {"code": code, "severity": severity, "message": message, "raised_ts": raised_ts}
            alarm_id = _insert(db, "alarms", alarm)
            body = {"type": "alarm_raised", "id": alarm_id, **alarm}
            self._outbox_add(db, raised_ts, "event", body)
            return alarm_id

        return self._submit_outbox(apply)

    def clear_alarm(self, code: str, ts: float | None = None) -> Future[int | None]:
        """Queue clearing the active alarm with this code; the future gives its id, or
        None if no alarm with this code was active."""
        cleared_ts = self._now(ts)

        def apply(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT id FROM alarms WHERE code = ? AND cleared_ts IS NULL", [code]
            ).fetchone()
            if row is None:
                return None
            alarm_id = int(row[0])
            db.execute("UPDATE alarms SET cleared_ts = ? WHERE id = ?", [cleared_ts, alarm_id])
            body = {"type": "alarm_cleared", "id": alarm_id, "code": code, "cleared_ts": cleared_ts}
            self._outbox_add(db, cleared_ts, "event", body)
            return alarm_id

        return self._submit_outbox(apply)

    def ack_alarm(self, alarm_id: int, by: str, ts: float | None = None) -> Future[bool]:
        """Queue an operator's acknowledgement; the future gives True if this call
        acknowledged the alarm, False if it does not exist or was already acknowledged
        (the first acknowledgement, and who gave it, is kept). Cleared alarms can be
        acknowledged: an operator may only see a short alarm after it cleared."""
        acked_ts = self._now(ts)

        def apply(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE alarms SET acked_ts = ?, acked_by = ? WHERE id = ? AND acked_ts IS NULL",
                [acked_ts, by, alarm_id],
            )
            return cursor.rowcount == 1

        return self._submit(apply)

    def put_state(self, key: str, value: Any) -> Future[None]:
        """Queue saving a JSON value under ``key`` for resuming after a restart.

        Raises TypeError/ValueError here, in the caller, if the value is not plain JSON:
        state must read back exactly as written, so it is not coerced.
        """
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        updated_ts = self._clock()

        def apply(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO state (key, value, updated_ts) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value, updated_ts = excluded.updated_ts",
                [key, text, updated_ts],
            )

        return self._submit(apply)

    def prune_telemetry(self, older_than_ts: float) -> Future[int]:
        """Queue deleting telemetry samples with ts < ``older_than_ts``; the future gives
        how many rows went. Runs per series, along the (key_id, ts) primary key."""

        def apply(db: sqlite3.Connection) -> int:
            deleted = 0
            for (key_id,) in db.execute("SELECT id FROM telemetry_keys").fetchall():
                cursor = db.execute(
                    "DELETE FROM telemetry WHERE key_id = ? AND ts < ?", [key_id, older_than_ts]
                )
                deleted += cursor.rowcount
            return deleted

        return self._submit(apply)

    def prune_refusals(self, older_than_ts: float) -> Future[int]:
        """Queue deleting the refused calls (every outcome but "accepted") with ts <
        ``older_than_ts``; the future gives how many rows went. Accepted commands stay."""

        def apply(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM commands WHERE ts < ? AND outcome != ?", [older_than_ts, ACCEPTED]
            )
            return int(cursor.rowcount)

        return self._submit(apply)

    def record_telemetry(self, ts: float, samples: Mapping[str, float]) -> None:
        """Queue samples taken at ``ts`` [s], keyed like "charger_1.soc_pct".

        Fire-and-forget: batched with up to ``telemetry_flush_s`` of other samples into
        one commit. Non-finite values (NaN, inf: a sensor with nothing to say) are
        skipped, since SQLite would store NaN as NULL. If the queue is over
        ``max_telemetry_backlog`` (the disk has been failing a while), the oldest go.
        """
        rows: list[_Sample] = []
        for key, raw in samples.items():
            value = float(raw)
            if math.isfinite(value):
                rows.append((ts, key, value))
        if not rows:
            return
        with self._cond:
            self._check_open_locked()
            first = not self._telemetry
            if first:
                self._telemetry_since = time.monotonic()
            overflow = len(self._telemetry) + len(rows) - self._max_telemetry_backlog
            self._telemetry.extend(rows)  # a bounded deque: drops from the old end
            if overflow > 0:
                self._note_dropped_locked(overflow)
            # Wake the writer when its deadline changes (an idle writer waits with no
            # timeout) or a batch is full; not on every sample.
            if first or len(self._telemetry) >= self._telemetry_batch_samples:
                self._cond.notify()

    def outbox_telemetry(self, body: Mapping[str, Any], ts: float | None = None) -> Future[int]:
        """Queue a telemetry row (a state snapshot) for the EOC; the future gives its seq.
        The first rows to go when the outbox is full."""
        if self._outbox_max_rows is None:
            raise StoreError("this store has no outbox (outbox_max_rows is None)")
        text_ts = self._now(ts)
        payload = dict(body)

        def apply(db: sqlite3.Connection) -> int:
            seq = self._outbox_add(db, text_ts, "telemetry", payload)
            assert seq is not None
            return seq

        return self._submit_outbox(apply)

    def outbox_ack(self, up_to_seq: int) -> Future[int]:
        """Queue deleting the outbox rows with seq <= ``up_to_seq`` (the EOC's
        acknowledgement); the future gives how many went. Ends an overflow episode."""

        def apply(db: sqlite3.Connection) -> int:
            deleted = int(db.execute("DELETE FROM outbox WHERE seq <= ?", [up_to_seq]).rowcount)
            if deleted:
                dropped = _outbox_dropped(db)
                if dropped["overflowing"]:
                    dropped["overflowing"] = False
                    _put_state(db, OUTBOX_DROPPED_KEY, dropped, self._clock())
            return deleted

        return self._submit(apply)

    def on_outbox(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the writer thread; it must not block) after each commit
        that added outbox rows."""
        self._outbox_listeners.append(listener)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is committed; False on timeout.

        Blocks: for tests, shutdown and tools, not for the control loop.
        """
        future = self._submit(lambda db: None)
        try:
            future.result(timeout)
        except TimeoutError:
            return False
        return True

    async def committed(self, future: Future[T]) -> T:
        """Await a write's commit from asyncio without blocking the loop.

        Cancelling the wait does not cancel the write: once queued, it is written.
        """
        return await asyncio.wrap_future(future)

    # --- reads (any thread; they touch the disk) -----------------------------------

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[EventRecord]:
        """Committed events with since <= ts < until, newest (highest id) first.

        Page by passing the last id of one page as ``before_id`` of the next. ``kinds``
        keeps only those kinds; an empty sequence matches nothing.
        """
        _check_limit(limit)
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else list(kinds)
            if not kinds:
                return []
        where, params = _time_range("ts", since, until)
        if kinds is not None:
            where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = (
            'SELECT id, ts, kind, mode_from, mode_to, "trigger", reason, data FROM events'
            f"{_where(where)} ORDER BY id DESC LIMIT ?"
        )
        with self._reader() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [
            EventRecord(
                id=r[0],
                ts=r[1],
                kind=r[2],
                mode_from=r[3],
                mode_to=r[4],
                trigger=r[5],
                reason=r[6],
                data=json.loads(r[7]),
            )
            for r in rows
        ]

    def commands(self, *, limit: int = 100, before_id: int | None = None) -> list[CommandRecord]:
        """Committed commands, newest first, paged by ``before_id`` like `events`."""
        _check_limit(limit)
        where, params = ([], []) if before_id is None else (["id < ?"], [before_id])
        sql = (
            "SELECT id, ts, actor, role, command, args, outcome, detail, count, last_ts"
            f" FROM commands{_where(where)} ORDER BY id DESC LIMIT ?"
        )
        with self._reader() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [
            CommandRecord(
                id=r[0],
                ts=r[1],
                actor=r[2],
                role=r[3],
                command=r[4],
                args=json.loads(r[5]),
                outcome=r[6],
                detail=r[7],
                count=r[8],
                last_ts=r[9],
            )
            for r in rows
        ]

    def alarms(self, *, active_only: bool = False, limit: int = 100) -> list[AlarmRecord]:
        """Alarms, most recently raised first; ``active_only`` keeps the uncleared ones."""
        _check_limit(limit)
        where = ["cleared_ts IS NULL"] if active_only else []
        sql = (
            "SELECT id, code, severity, message, raised_ts, cleared_ts, acked_ts, acked_by"
            f" FROM alarms{_where(where)} ORDER BY id DESC LIMIT ?"
        )
        with self._reader() as db:
            rows = db.execute(sql, [limit]).fetchall()
        return [AlarmRecord(*r) for r in rows]

    def telemetry(
        self, key: str, *, since: float | None = None, until: float | None = None
    ) -> list[tuple[float, float]]:
        """One series as (ts [s], value) pairs with since <= ts < until, oldest first."""
        where, params = _time_range("t.ts", since, until)
        sql = (
            "SELECT t.ts, t.value FROM telemetry AS t"
            " JOIN telemetry_keys AS k ON k.id = t.key_id"
            f"{_where(['k.key = ?', *where])} ORDER BY t.ts"
        )
        with self._reader() as db:
            rows = db.execute(sql, [key, *params]).fetchall()
        return [(float(r[0]), float(r[1])) for r in rows]

    def outbox(self, *, after_seq: int = 0, limit: int = 500) -> list[OutboxRow]:
        """Outbox rows with seq > ``after_seq``, oldest first."""
        _check_limit(limit)
        with self._reader() as db:
            rows = db.execute(
                "SELECT seq, ts, kind, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                [after_seq, limit],
            ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def outbox_page(self, *, after_seq: int = 0, limit: int = 500) -> tuple[list[OutboxRow], int]:
        """`outbox(after_seq, limit)` and the lowest seq still in the outbox (0: empty), read
        in one transaction: what a publisher sends, and the floor it sends with it."""
        _check_limit(limit)
        with self._reader() as db:
            db.execute("BEGIN")
            try:
                rows = db.execute(
                    "SELECT seq, ts, kind, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    [after_seq, limit],
                ).fetchall()
                (low,) = db.execute("SELECT coalesce(min(seq), 0) FROM outbox").fetchone()
            finally:
                db.execute("COMMIT")
        return [OutboxRow(r[0], r[1], r[2], json.loads(r[3])) for r in rows], int(low)

    def outbox_bounds(self) -> tuple[int, int, int]:
        """(rows, lowest seq, highest seq ever given); 0 for a bound that does not exist.
        The highest comes from sqlite_sequence: it survives the rows' deletion."""
        with self._reader() as db:
            rows, low = db.execute("SELECT count(*), coalesce(min(seq), 0) FROM outbox").fetchone()
            high = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(rows), int(low), 0 if high is None else int(high[0])

    def get_state(self, key: str, default: Any = None) -> Any:
        """The committed JSON value saved under ``key``, or ``default``."""
        with self._reader() as db:
            row = db.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()
        return default if row is None else json.loads(row[0])

    # --- status ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next successful commit."""
        return self._healthy

    @property
    def backlog(self) -> int:
        """Records queued or being written, not yet committed (samples count one each)."""
        with self._cond:
            return len(self._ops) + len(self._telemetry) + self._in_flight

    @property
    def commits(self) -> int:
        """Transactions the writer has committed: a measure of batching."""
        return self._commits

    @property
    def dropped_telemetry(self) -> int:
        """Telemetry samples dropped because the backlog was over its bound."""
        return self._dropped_telemetry

    # --- internals: callers' side ------------------------------------------------------

    @property
    def _max_telemetry_backlog(self) -> int:
        maxlen = self._telemetry.maxlen
        assert maxlen is not None
        return maxlen

    def _now(self, ts: float | None) -> float:
        return self._clock() if ts is None else ts

    def _check_open_locked(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self._path} is closed")

    def _submit_outbox(self, apply: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """`_submit`, and tell the outbox listeners once it committed (with an outbox)."""
        future = self._submit(apply)
        if self._outbox_max_rows is not None:
            future.add_done_callback(self._outbox_committed)
        return future

    def _outbox_committed(self, future: Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        for listener in self._outbox_listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not stop the writer
                _log.exception("store %s: outbox listener failed", self._path)

    def _outbox_add(
        self, db: sqlite3.Connection, ts: float, kind: str, body: Mapping[str, Any]
    ) -> int | None:
        """Add an outbox row inside the caller's transaction and keep the bound; its seq
        (None without an outbox). Writer thread only."""
        limit = self._outbox_max_rows
        if limit is None:
            return None
        cursor = db.execute(
            "INSERT INTO outbox (ts, kind, body) VALUES (?, ?, ?)", [ts, kind, _audit_json(body)]
        )
        seq = cursor.lastrowid
        assert seq is not None
        (rows,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        if rows > limit:
            self._outbox_trim(db, rows - limit, ts)
        return seq

    def _outbox_trim(self, db: sqlite3.Connection, excess: int, ts: float) -> None:
        """Drop `excess` rows, oldest telemetry first, then oldest events; say so once per
        overflow episode (an event and an outbox row, within the bound)."""
        dropped = _outbox_dropped(db)
        first = not dropped["overflowing"]
        if first:
            excess += 1  # room for the row that says so
        gone: dict[str, int] = {}
        for kind in ("telemetry", "event"):
            if excess <= 0:
                break
            cursor = db.execute(
                "DELETE FROM outbox WHERE seq IN"
                " (SELECT seq FROM outbox WHERE kind = ? ORDER BY seq LIMIT ?)",
                [kind, excess],
            )
            gone[kind] = cursor.rowcount
            excess -= cursor.rowcount
        dropped["telemetry"] += gone.get("telemetry", 0)
        dropped["events"] += gone.get("event", 0)
        dropped["overflowing"] = True
        _put_state(db, OUTBOX_DROPPED_KEY, dropped, self._clock())
        if first:
            row = {
                "ts": ts,
                "kind": "fleet",
                "mode_from": None,
                "mode_to": None,
                "trigger": None,
                "reason": (
                    f"outbox full ({self._outbox_max_rows} rows the EOC has not acknowledged):"
                    " dropping the oldest telemetry, then the oldest events"
                ),
                "data": _audit_json(dropped),
            }
            event_id = _insert(db, "events", row)
            body = {"type": "event", "id": event_id, **row, "data": dropped}
            db.execute(
                "INSERT INTO outbox (ts, kind, body) VALUES (?, 'event', ?)",
                [ts, _audit_json(body)],
            )

    def _submit(self, apply: Callable[[sqlite3.Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            self._check_open_locked()
            self._ops.append(_Op(apply, future))
            self._cond.notify()
        return future

    def _note_dropped_locked(self, count: int) -> None:
        self._dropped_telemetry += count
        if not self._drop_logged:
            self._drop_logged = True
            _log.warning(
                "store %s: more than %d telemetry samples queued; dropping the oldest",
                self._path,
                self._max_telemetry_backlog,
            )

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A fresh read-only connection: cheap, and never shared across threads."""
        db = _open(self._path, self._read_timeout_s)
        try:
            db.execute("PRAGMA query_only = ON")
            yield db
        finally:
            db.close()

    def _fail_leftovers(self) -> None:
        """After the writer stopped: fail what it could not write, so no waiter hangs."""
        if self._thread is not None and self._thread.is_alive():
            return  # still finishing an attempt; it fails its own leftovers on the way out
        self._fail_queued()

    def _fail_queued(self) -> None:
        with self._cond:
            ops = list(self._ops)
            self._ops.clear()
            self._telemetry.clear()
            self._in_flight = 0
        if ops:
            _log.error(
                "store %s: closed with %d records not written (disk failing)", self._path, len(ops)
            )
        for op in ops:
            _settle(op.future, None, StoreClosedError("store closed before this was written"))

    # --- internals: the writer thread --------------------------------------------------

    def _due_locked(self) -> bool:
        if self._ops:
            return True
        if not self._telemetry:
            return False
        return (
            self._stopping
            or self._retry_due
            or len(self._telemetry) >= self._telemetry_batch_samples
            or time.monotonic() - self._telemetry_since >= self._telemetry_flush_s
        )

    def _wait_s_locked(self) -> float | None:
        if not self._telemetry:
            return None
        return max(0.0, self._telemetry_since + self._telemetry_flush_s - time.monotonic())

    def _run(self) -> None:
        """Take everything queued, commit it as one transaction, settle, repeat."""
        backoff = self._backoff_initial_s
        try:
            while True:
                with self._cond:
                    while True:
                        if self._abandon.is_set():
                            return
                        if self._due_locked():
                            break
                        if self._stopping and not self._ops and not self._telemetry:
                            self._flushed = True
                            return
                        self._cond.wait(self._wait_s_locked())
                    batch = _Batch(deque(self._ops), list(self._telemetry))
                    self._ops.clear()
                    self._telemetry.clear()
                    self._in_flight = batch.size
                try:
                    self._write(batch)
                except Exception as exc:  # a disk failure, or a bug: keep the data, retry
                    self._put_back(batch)
                    self._set_unhealthy(exc)
                    self._disconnect()
                    self._settle_done(batch)
                    if self._abandon.wait(backoff):
                        return
                    backoff = min(backoff * 2, self._backoff_max_s)
                else:
                    with self._cond:
                        self._in_flight = 0
                        self._retry_due = False
                    self._set_healthy()
                    self._settle_done(batch)
                    backoff = self._backoff_initial_s
        finally:
            self._disconnect()
            if self._abandon.is_set():
                self._fail_queued()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = _open(self._path, self._busy_timeout_s)
            try:
                db.execute("PRAGMA synchronous = FULL")
                db.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")  # negative: KiB
                self._key_ids = _load_key_ids(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _disconnect(self) -> None:
        """Drop the connection after a failure: after an I/O error it may be unusable,
        and the key-id cache may name rows a rollback removed."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
            self._key_ids = {}

    def _transaction(self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.rollback()
            raise
        self._commits += 1
        return result

    def _write(self, batch: _Batch) -> None:
        """Commit the batch; on success it is empty and ``batch.done`` holds the results.

        A disk failure (see `_is_disk_failure`) propagates with the unwritten part still
        in the batch. Any other error means one record is bad (a bug: values are checked
        when queued); the batch is then written record by record so the bad one fails
        alone, its future carrying the error, and the rest still commit.
        """
        db = self._connect()

        def write_all(db: sqlite3.Connection) -> list[Any]:
            if batch.samples:
                self._insert_telemetry(db, batch.samples)
            return [op.apply(db) for op in batch.ops]

        try:
            results = self._transaction(db, write_all)
        except Exception as exc:
            if _is_disk_failure(exc):
                raise
            _log.exception("store %s: a batch failed; writing it record by record", self._path)
            self._key_ids = _load_key_ids(db)
            self._write_one_by_one(db, batch)
            return
        batch.done.extend((op, result, None) for op, result in zip(batch.ops, results, strict=True))
        batch.ops.clear()
        batch.samples.clear()

    def _write_one_by_one(self, db: sqlite3.Connection, batch: _Batch) -> None:
        if batch.samples:
            samples = batch.samples
            try:
                self._transaction(db, lambda db: self._insert_telemetry(db, samples))
            except Exception as exc:
                if _is_disk_failure(exc):
                    raise
                _log.exception("store %s: dropping %d telemetry samples", self._path, len(samples))
                self._key_ids = _load_key_ids(db)
            batch.samples.clear()
        while batch.ops:
            op = batch.ops[0]
            try:
                result = self._transaction(db, op.apply)
            except Exception as exc:
                if _is_disk_failure(exc):
                    raise
                batch.ops.popleft()
                batch.done.append((op, None, exc))
                continue
            batch.ops.popleft()
            batch.done.append((op, result, None))

    def _insert_telemetry(self, db: sqlite3.Connection, samples: list[_Sample]) -> None:
        key_ids = self._key_ids
        rows: list[tuple[int, float, float]] = []
        for ts, key, value in samples:
            key_id = key_ids.get(key)
            if key_id is None:
                key_id = _telemetry_key_id(db, key)
                key_ids[key] = key_id
            rows.append((key_id, ts, value))
        # One prepared statement for the batch (one executemany, not a statement per row).
        db.executemany(
            "INSERT OR REPLACE INTO telemetry (key_id, ts, value) VALUES (?, ?, ?)", rows
        )

    def _put_back(self, batch: _Batch) -> None:
        """Return the unwritten part of a batch to the front of the queue, in order."""
        with self._cond:
            self._ops.extendleft(reversed(batch.ops))
            if batch.samples:
                merged: deque[_Sample] = deque(batch.samples, maxlen=self._max_telemetry_backlog)
                overflow = len(batch.samples) + len(self._telemetry) - self._max_telemetry_backlog
                merged.extend(self._telemetry)  # drops from the old end, as enqueueing does
                self._telemetry = merged
                if overflow > 0:
                    self._note_dropped_locked(overflow)
            self._in_flight = 0
            self._retry_due = True

    def _settle_done(self, batch: _Batch) -> None:
        for op, result, error in batch.done:
            _settle(op.future, result, error)
        batch.done.clear()

    def _set_unhealthy(self, exc: BaseException) -> None:
        if not self._healthy:
            _log.debug("store %s: write still failing: %s", self._path, exc)
            return
        self._healthy = False
        self._failing_since = time.monotonic()
        _log.error(
            "store %s: write failed (%s: %s); keeping %d records in memory and retrying",
            self._path,
            type(exc).__name__,
            exc,
            self.backlog,
        )
        self._notify_health(False)

    def _set_healthy(self) -> None:
        if self._healthy:
            return
        self._healthy = True
        with self._cond:
            self._drop_logged = False
        _log.warning(
            "store %s: writes recovered after %.1f s",
            self._path,
            time.monotonic() - self._failing_since,
        )
        self._notify_health(True)

    def _notify_health(self, healthy: bool) -> None:
        if self._on_health_change is None:
            return
        try:
            self._on_health_change(healthy)
        except Exception:
            _log.exception("store %s: on_health_change callback failed", self._path)


# --- helpers ---------------------------------------------------------------------------


def _insert(db: sqlite3.Connection, table_name: str, row: dict[str, Any]) -> int:
    """Insert one row (column names are the store's own, never a caller's); its id."""
    columns = ", ".join(f'"{column}"' for column in row)
    places = ", ".join("?" for _ in row)
    cursor = db.execute(
        f'INSERT INTO "{table_name}" ({columns}) VALUES ({places})', list(row.values())
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _outbox_dropped(db: sqlite3.Connection) -> dict[str, Any]:
    row = db.execute("SELECT value FROM state WHERE key = ?", [OUTBOX_DROPPED_KEY]).fetchone()
    dropped: dict[str, Any] = {"telemetry": 0, "events": 0, "overflowing": False}
    if row is not None:
        dropped.update(json.loads(row[0]))
    return dropped


def _put_state(db: sqlite3.Connection, key: str, value: Any, updated_ts: float) -> None:
    db.execute(
        "INSERT INTO state (key, value, updated_ts) VALUES (?, ?, ?) ON CONFLICT (key)"
        " DO UPDATE SET value = excluded.value, updated_ts = excluded.updated_ts",
        [key, json.dumps(value, separators=(",", ":")), updated_ts],
    )


def _telemetry_key_id(db: sqlite3.Connection, key: str) -> int:
    """The id of a series name, added on first use."""
    row = db.execute("SELECT id FROM telemetry_keys WHERE key = ?", [key]).fetchone()
    if row is not None:
        return int(row[0])
    cursor = db.execute("INSERT INTO telemetry_keys (key) VALUES (?)", [key])
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _coalesce_refusal(db: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Add a refused call to its actor's rows of the same minute (module docstring)."""
    ts = float(row["ts"])
    minute = math.floor(ts / 60.0) * 60.0
    same_minute = db.execute(
        "SELECT id, role, command, args, outcome, detail FROM commands"
        " WHERE actor = ? AND ts >= ? AND ts < ? AND outcome != ?",
        [row["actor"], minute, minute + 60.0, ACCEPTED],
    ).fetchall()
    key = (row["role"], row["command"], row["args"], row["outcome"], row["detail"])
    overflow_key = (row["role"], OVERFLOW_COMMAND, row["outcome"])
    target: int | None = None
    distinct = 0
    overflow: int | None = None
    for row_id, role, command, args, outcome, detail in same_minute:
        if command == OVERFLOW_COMMAND:
            if (role, command, outcome) == overflow_key:
                overflow = row_id
            continue
        distinct += 1
        if (role, command, args, outcome, detail) == key:
            target = row_id
    if target is None and distinct >= REFUSAL_ROWS_PER_MINUTE:
        target = overflow
        summary = f"more than {REFUSAL_ROWS_PER_MINUTE} kinds of refused calls this minute;"
        row = {
            **row,
            "command": OVERFLOW_COMMAND,
            "args": "{}",
            "detail": f"{summary} the last: {row['command']}: {row['detail']}"[:500],
        }
        if target is not None:
            db.execute(
                "UPDATE commands SET count = count + 1, last_ts = ?, detail = ? WHERE id = ?",
                [ts, row["detail"], target],
            )
            return target
    if target is None:
        return _insert(db, "commands", row)
    db.execute(
        "UPDATE commands SET count = count + 1, last_ts = ? WHERE id = ?", [ts, target]
    )
    return target


def _is_disk_failure(exc: BaseException) -> bool:
    """Errors of the database file rather than of one record: keep the data, retry.

    OperationalError covers locked, busy, I/O error, disk full, cannot open, read-only.
    A bare DatabaseError is SQLITE_CORRUPT/NOTADB: not transient, but failing every
    queued record would lose them while the process lives, so they stay queued too and
    the store stays unhealthy until someone repairs or replaces the file.
    """
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def _load_key_ids(db: sqlite3.Connection) -> dict[str, int]:
    return {key: key_id for key_id, key in db.execute("SELECT id, key FROM telemetry_keys")}


def _time_range(
    column: str, since: float | None, until: float | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        params.append(until)
    return where, params


def _where(clauses: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
