"""Tests for resilience.store: round-trips, paging, alarms, durability, disk failures, batching.

Waits are on futures or on the store's health callback, never on bare sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

import resilience
from resilience.store import (
    SCHEMA_VERSION,
    WRITER_CACHE_KIB,
    WRITER_THREAD_NAME,
    AlarmRecord,
    CommandRecord,
    EventRecord,
    Store,
    StoreClosedError,
    StoreError,
)

WAIT_S = 5.0  # upper bound for any single wait; a passing test never gets close

MakeStore = Callable[..., Store]


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "site.db"  # parent does not exist yet: Store creates it


@pytest.fixture
def make_store(db_path: Path) -> Iterator[MakeStore]:
    """Build started stores with fast retry timing; close them all, leave no thread."""
    stores: list[Store] = []

    def make(*, start: bool = True, **kwargs: Any) -> Store:
        options: dict[str, Any] = {
            "backoff_initial_s": 0.005,
            "backoff_max_s": 0.05,
            "busy_timeout_s": 0.02,
        }
        options.update(kwargs)
        store = Store(db_path, **options)
        stores.append(store)
        if start:
            store.start()
        return store

    yield make
    for store in stores:
        store.close(timeout=WAIT_S)
    alive = [t for t in threading.enumerate() if t.name == WRITER_THREAD_NAME]
    assert not alive, "a store writer thread outlived its store"


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store(clock=FakeClock())


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.005)
    return True


def wait_all(futures: list[Future[Any]]) -> list[Any]:
    return [f.result(timeout=WAIT_S) for f in futures]


# --- round trips ---------------------------------------------------------------------------


def test_event_round_trip(store: Store) -> None:
    event_id = store.record_event(
        "mode_change",
        "grid voltage lost for 0.2 s",
        mode_from="grid_connected",
        mode_to="islanding",
        trigger="grid_lost",
        data={"grid_v": 0.0, "loads": ["fridge", "radio"]},
        ts=1000.5,
    ).result(timeout=WAIT_S)

    assert store.events() == [
        EventRecord(
            id=event_id,
            ts=1000.5,
            kind="mode_change",
            mode_from="grid_connected",
            mode_to="islanding",
            trigger="grid_lost",
            reason="grid voltage lost for 0.2 s",
            data={"grid_v": 0.0, "loads": ["fridge", "radio"]},
        )
    ]


def test_event_defaults_take_the_clock_and_empty_data(make_store: MakeStore) -> None:
    clock = FakeClock(1234.0)
    store = make_store(clock=clock)
    store.record_event("controller", "started").result(timeout=WAIT_S)
    [event] = store.events()
    assert (event.ts, event.mode_from, event.mode_to, event.trigger, event.data) == (
        1234.0,
        None,
        None,
        None,
        {},
    )


def test_command_round_trip(store: Store) -> None:
    command_id = store.record_command(
        "alice", "operator", "shed_load", {"load_id": "laundry"}, "done", "shed by operator", ts=5.0
    ).result(timeout=WAIT_S)
    second_id = store.record_command("bob", "viewer", "restore_load", {}, "refused", ts=6.0).result(
        timeout=WAIT_S
    )

    assert store.commands() == [
        CommandRecord(second_id, 6.0, "bob", "viewer", "restore_load", {}, "refused", ""),
        CommandRecord(
            command_id,
            5.0,
            "alice",
            "operator",
            "shed_load",
            {"load_id": "laundry"},
            "done",
            "shed by operator",
        ),
    ]
    assert store.commands(before_id=second_id) == store.commands()[1:]


def test_audit_data_that_is_not_json_is_kept_as_text(store: Store) -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    store.record_event("note", "odd data", data={"value": Odd()}).result(timeout=WAIT_S)
    assert store.events()[0].data == {"value": "odd"}


def test_a_bad_record_fails_alone_and_the_rest_of_its_batch_commits(
    make_store: MakeStore,
) -> None:
    store = make_store(start=False)  # queue all three so they share one batch
    good = store.record_event("dispatch", "before")
    bad = store.record_event("dispatch", object())  # type: ignore[arg-type]
    after = store.record_event("dispatch", "after")
    store.start()

    wait_all([good, after])
    with pytest.raises(sqlite3.Error):
        bad.result(timeout=WAIT_S)
    assert [e.reason for e in store.events()] == ["after", "before"]
    assert store.healthy


def test_state_round_trip_and_survives_reopen(make_store: MakeStore, db_path: Path) -> None:
    store = make_store()
    assert store.get_state("locked_off") is None
    assert store.get_state("locked_off", []) == []
    wait_all(
        [
            store.put_state("locked_off", ["laundry"]),
            store.put_state("donors", {"ev_1": {"reserve_soc_pct": 40}}),
            store.put_state("locked_off", ["laundry", "sauna"]),  # the last write wins
        ]
    )
    assert store.close()

    reopened = make_store()
    assert reopened.get_state("locked_off") == ["laundry", "sauna"]
    assert reopened.get_state("donors") == {"ev_1": {"reserve_soc_pct": 40}}


def test_state_that_is_not_plain_json_fails_in_the_caller(store: Store) -> None:
    with pytest.raises(TypeError):
        store.put_state("bad", object())
    with pytest.raises(ValueError):
        store.put_state("bad", float("nan"))
    assert store.backlog == 0


# --- events: paging and filtering ----------------------------------------------------------


def test_events_filter_by_time_range_and_kind(store: Store) -> None:
    kinds = ["mode_change", "dispatch", "controller"]
    ids = wait_all([store.record_event(kinds[i % 3], f"event {i}", ts=100.0 + i) for i in range(9)])

    assert [e.id for e in store.events()] == ids[::-1]
    assert [e.ts for e in store.events(since=103.0, until=106.0)] == [105.0, 104.0, 103.0]
    assert [e.ts for e in store.events(since=107.0)] == [108.0, 107.0]
    assert [e.ts for e in store.events(until=101.0)] == [100.0]
    assert [e.reason for e in store.events(kinds=["dispatch"])] == ["event 7", "event 4", "event 1"]
    assert {e.kind for e in store.events(kinds=["dispatch", "controller"])} == {
        "dispatch",
        "controller",
    }
    assert store.events(kinds="dispatch") == store.events(kinds=["dispatch"])
    assert store.events(kinds=[]) == []
    assert [e.ts for e in store.events(since=102.0, until=108.0, kinds=["mode_change"])] == [
        106.0,
        103.0,
    ]


def test_events_page_newest_first_by_before_id(store: Store) -> None:
    ids = wait_all([store.record_event("dispatch", f"event {i}") for i in range(10)])

    pages: list[list[int]] = []
    before_id: int | None = None
    while page := store.events(limit=4, before_id=before_id):
        pages.append([e.id for e in page])
        before_id = page[-1].id

    assert [len(p) for p in pages] == [4, 4, 2]
    assert [i for p in pages for i in p] == ids[::-1]
    assert store.events(limit=0) == []
    with pytest.raises(ValueError):
        store.events(limit=-1)


# --- alarms --------------------------------------------------------------------------------


def test_alarm_raise_is_deduplicated_until_cleared(store: Store) -> None:
    first = store.raise_alarm("grid_lost", "warning", "grid voltage lost", ts=10.0)
    again = store.raise_alarm("grid_lost", "critical", "still lost", ts=11.0)
    other = store.raise_alarm("ev_1_comm", "warning", "vehicle not answering", ts=12.0)
    first_id, again_id, other_id = wait_all([first, again, other])
    assert again_id == first_id
    assert other_id != first_id

    assert store.clear_alarm("grid_lost", ts=20.0).result(timeout=WAIT_S) == first_id
    assert store.clear_alarm("grid_lost", ts=21.0).result(timeout=WAIT_S) is None
    assert store.clear_alarm("never_raised").result(timeout=WAIT_S) is None

    new_id = store.raise_alarm("grid_lost", "warning", "lost again", ts=30.0).result(timeout=WAIT_S)
    assert new_id not in (first_id, other_id)

    assert store.alarms() == [
        AlarmRecord(new_id, "grid_lost", "warning", "lost again", 30.0, None, None, None),
        AlarmRecord(
            other_id, "ev_1_comm", "warning", "vehicle not answering", 12.0, None, None, None
        ),
        AlarmRecord(first_id, "grid_lost", "warning", "grid voltage lost", 10.0, 20.0, None, None),
    ]
    assert [a.id for a in store.alarms(active_only=True)] == [new_id, other_id]
    assert [a.id for a in store.alarms(limit=1)] == [new_id]


def test_alarm_ack_keeps_the_first_acknowledgement(store: Store) -> None:
    alarm_id = store.raise_alarm("ev_1_comm", "warning", "vehicle not answering", ts=1.0).result(
        timeout=WAIT_S
    )
    store.clear_alarm("ev_1_comm", ts=2.0).result(timeout=WAIT_S)

    assert store.ack_alarm(alarm_id, "alice", ts=3.0).result(timeout=WAIT_S) is True
    assert store.ack_alarm(alarm_id, "bob", ts=4.0).result(timeout=WAIT_S) is False
    assert store.ack_alarm(alarm_id + 100, "bob").result(timeout=WAIT_S) is False

    [alarm] = store.alarms()
    assert (alarm.cleared_ts, alarm.acked_ts, alarm.acked_by) == (2.0, 3.0, "alice")


# --- asyncio -------------------------------------------------------------------------------


async def test_committed_awaits_the_commit_from_asyncio(store: Store) -> None:
    event_id = await store.committed(store.record_event("controller", "started"))
    await store.committed(store.put_state("mode", "islanded"))
    assert [e.id for e in store.events()] == [event_id]
    assert store.get_state("mode") == "islanded"


# --- durability ----------------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from resilience.store import Store

    store = Store(sys.argv[1])
    store.start()
    futures = [store.record_event("dispatch", f"event {i}", data={"i": i})
               for i in range(int(sys.argv[2]))]
    for future in futures:
        future.result(timeout=10)
    print("acked", flush=True)
    os._exit(9)  # no close(), no flush, no atexit: like a kill
    """
)


def test_acknowledged_events_survive_a_killed_process(make_store: MakeStore, db_path: Path) -> None:
    count = 300
    repo_root = Path(resilience.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(db_path), str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert child.returncode == 9, child.stderr
    assert child.stdout.strip() == "acked"

    reopened = make_store()
    events = reopened.events(limit=count + 10)
    assert sorted(e.data["i"] for e in events) == list(range(count))


# --- a failing disk ------------------------------------------------------------------------


def test_locked_database_keeps_writes_pending_then_commits_them(
    make_store: MakeStore, db_path: Path
) -> None:
    health: queue.Queue[bool] = queue.Queue()
    store = make_store(on_health_change=health.put)
    boot_id = store.record_event("controller", "started").result(timeout=WAIT_S)

    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        event = store.record_event("mode_change", "grid lost while the disk was locked")
        command = store.record_command("alice", "operator", "shed_load", {}, "done")
        alarm = store.raise_alarm("store_slow", "warning", "disk locked")
        state = store.put_state("mode", "islanded")
        store.record_telemetry(50.0, {"charger_1.soc_pct": 81.5})

        assert health.get(timeout=WAIT_S) is False
        assert not store.healthy
        # Retries keep failing (back-off is 5-50 ms), and nothing is reported done.
        with pytest.raises(TimeoutError):
            event.result(timeout=0.2)
        assert not any(f.done() for f in (command, alarm, state))
        assert store.backlog == 5
        # Readers are not blocked by the lock (WAL), and see only what committed.
        assert [e.id for e in store.events()] == [boot_id]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    event_id, _, _, _ = wait_all([event, command, alarm, state])
    assert health.get(timeout=WAIT_S) is True
    assert store.healthy
    assert store.flush(timeout=WAIT_S)
    assert store.backlog == 0
    assert [e.id for e in store.events()] == [event_id, boot_id]
    assert store.telemetry("charger_1.soc_pct") == [(50.0, 81.5)]
    assert store.get_state("mode") == "islanded"


def test_telemetry_queued_while_the_disk_fails_is_bounded_oldest_first(
    make_store: MakeStore, db_path: Path
) -> None:
    health: queue.Queue[bool] = queue.Queue()
    store = make_store(max_telemetry_backlog=3, on_health_change=health.put)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        store.record_telemetry(0.0, {"meter.power_w": 0.0})
        store.record_telemetry(1.0, {"meter.power_w": 1.0})
        event = store.record_event("controller", "forces a write attempt now")
        assert health.get(timeout=WAIT_S) is False
        for second in (2.0, 3.0, 4.0):
            store.record_telemetry(second, {"meter.power_w": second})
        assert store.backlog <= 3 + 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    event.result(timeout=WAIT_S)
    assert store.flush(timeout=WAIT_S)
    assert [ts for ts, _ in store.telemetry("meter.power_w")] == [2.0, 3.0, 4.0]
    assert store.dropped_telemetry == 2


def test_close_gives_up_after_its_timeout_and_fails_what_it_could_not_write(
    make_store: MakeStore, db_path: Path
) -> None:
    store = make_store()
    store.record_event("controller", "started").result(timeout=WAIT_S)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        pending = store.record_event("controller", "stopping")
        assert store.close(timeout=0.1) is False
        with pytest.raises(StoreClosedError):
            pending.result(timeout=WAIT_S)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.close() is False  # idempotent


# --- telemetry -----------------------------------------------------------------------------


def test_telemetry_is_batched_into_few_commits(store: Store) -> None:
    commits_before = store.commits
    keys = [f"charger_{n}.power_w" for n in range(10)]
    for second in range(1000):  # 1000 cycles x 10 series = 10 000 samples
        store.record_telemetry(
            float(second), {key: second * 10.0 + n for n, key in enumerate(keys)}
        )
    assert store.flush(timeout=WAIT_S)

    assert store.commits - commits_before <= 3
    series = store.telemetry("charger_3.power_w")
    assert len(series) == 1000
    assert series[:2] == [(0.0, 3.0), (1.0, 13.0)]
    assert store.telemetry("charger_3.power_w", since=10.0, until=12.0) == [
        (10.0, 103.0),
        (11.0, 113.0),
    ]
    assert store.telemetry("no_such.key") == []


def test_telemetry_flushes_on_its_own_within_the_flush_interval(make_store: MakeStore) -> None:
    store = make_store(telemetry_flush_s=0.05)
    assert store.flush(timeout=WAIT_S)  # the writer is now idle, waiting for work
    commits = store.commits
    store.record_telemetry(1.0, {"meter.power_w": 1500.0})
    # Fire-and-forget samples have no future: poll the commit count, with a deadline.
    assert wait_until(lambda: store.commits > commits, timeout=1.0)
    assert store.telemetry("meter.power_w") == [(1.0, 1500.0)]


def test_telemetry_skips_non_finite_values(store: Store) -> None:
    store.record_telemetry(1.0, {"meter.power_w": float("nan"), "meter.voltage_v": 230.1})
    store.record_telemetry(2.0, {"meter.power_w": float("inf")})
    assert store.flush(timeout=WAIT_S)
    assert store.telemetry("meter.power_w") == []
    assert store.telemetry("meter.voltage_v") == [(1.0, 230.1)]


def test_telemetry_backlog_drops_the_oldest_beyond_its_bound(make_store: MakeStore) -> None:
    store = make_store(start=False, max_telemetry_backlog=5)
    event = store.record_event("controller", "queued before start")
    for second in range(8):
        store.record_telemetry(float(second), {"meter.power_w": float(second)})
    assert store.backlog == 1 + 5
    assert store.dropped_telemetry == 3

    store.start()
    event.result(timeout=WAIT_S)
    assert store.flush(timeout=WAIT_S)
    assert [ts for ts, _ in store.telemetry("meter.power_w")] == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_prune_telemetry_deletes_only_older_samples(store: Store) -> None:
    for second in range(10):
        store.record_telemetry(float(second), {"meter.power_w": 1.0, "ev_1.soc_pct": 50.0})
    assert store.prune_telemetry(older_than_ts=4.0).result(timeout=WAIT_S) == 8
    assert [ts for ts, _ in store.telemetry("meter.power_w")] == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert len(store.telemetry("ev_1.soc_pct")) == 6
    assert store.prune_telemetry(older_than_ts=4.0).result(timeout=WAIT_S) == 0


# --- lifecycle and schema ------------------------------------------------------------------


def test_close_flushes_queued_writes_and_refuses_new_ones(make_store: MakeStore) -> None:
    store = make_store(start=False)
    event = store.record_event("controller", "written by close()")
    store.record_telemetry(1.0, {"meter.power_w": 10.0})
    assert store.close() is True
    assert isinstance(event.result(timeout=0), int)
    assert store.telemetry("meter.power_w") == [(1.0, 10.0)]
    with pytest.raises(StoreClosedError):
        store.record_event("controller", "too late")
    with pytest.raises(StoreClosedError):
        store.record_telemetry(2.0, {"meter.power_w": 10.0})
    with pytest.raises(StoreClosedError):
        store.start()


def test_schema_is_versioned_in_the_meta_table(make_store: MakeStore, db_path: Path) -> None:
    make_store().close()
    with sqlite3.connect(db_path) as conn:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        (journal_mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    assert int(version) == SCHEMA_VERSION
    assert journal_mode == "wal"

    make_store().close()  # reopening migrates nothing and keeps the version

    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'",
            [json.dumps(SCHEMA_VERSION + 1)],
        )
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(db_path)


# The schema as sqlite-utils made it (sqlite_master of a store created with it, before the
# store wrote its SQL itself): databases made before and after have one schema.
SCHEMA_MADE_BY_SQLITE_UTILS = [
    ("table", "alarms", 'CREATE TABLE "alarms" (\n   "id" INTEGER PRIMARY KEY,\n   "code" TEXT NOT NULL,\n   "severity" TEXT NOT NULL,\n   "message" TEXT NOT NULL,\n   "raised_ts" REAL NOT NULL,\n   "cleared_ts" REAL,\n   "acked_ts" REAL,\n   "acked_by" TEXT\n)'),  # noqa: E501
    ("index", "alarms_active_code", "CREATE UNIQUE INDEX alarms_active_code ON alarms(code) WHERE cleared_ts IS NULL"),  # noqa: E501
    ("table", "commands", 'CREATE TABLE "commands" (\n   "id" INTEGER PRIMARY KEY,\n   "ts" REAL NOT NULL,\n   "actor" TEXT NOT NULL,\n   "role" TEXT NOT NULL,\n   "command" TEXT NOT NULL,\n   "args" TEXT NOT NULL,\n   "outcome" TEXT NOT NULL,\n   "detail" TEXT NOT NULL\n, count INTEGER NOT NULL DEFAULT 1, last_ts REAL)'),  # noqa: E501
    ("index", "commands_actor_ts", 'CREATE INDEX "commands_actor_ts"\n    ON "commands" ("actor", "ts")'),  # noqa: E501
    ("index", "commands_ts", 'CREATE INDEX "commands_ts"\n    ON "commands" ("ts")'),
    ("table", "events", 'CREATE TABLE "events" (\n   "id" INTEGER PRIMARY KEY,\n   "ts" REAL NOT NULL,\n   "kind" TEXT NOT NULL,\n   "mode_from" TEXT,\n   "mode_to" TEXT,\n   "trigger" TEXT,\n   "reason" TEXT NOT NULL,\n   "data" TEXT NOT NULL\n)'),  # noqa: E501
    ("index", "events_kind_ts", 'CREATE INDEX "events_kind_ts"\n    ON "events" ("kind", "ts")'),
    ("index", "events_ts", 'CREATE INDEX "events_ts"\n    ON "events" ("ts")'),
    ("table", "meta", 'CREATE TABLE "meta" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT\n)'),
    ("index", "sqlite_autoindex_meta_1", None),
    ("index", "sqlite_autoindex_state_1", None),
    ("table", "state", 'CREATE TABLE "state" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT NOT NULL,\n   "updated_ts" REAL NOT NULL\n)'),  # noqa: E501
    ("table", "telemetry", "CREATE TABLE telemetry ( key_id INTEGER NOT NULL REFERENCES telemetry_keys(id), ts REAL NOT NULL, value REAL NOT NULL, PRIMARY KEY (key_id, ts)) WITHOUT ROWID"),  # noqa: E501
    ("table", "telemetry_keys", 'CREATE TABLE "telemetry_keys" (\n   "id" INTEGER PRIMARY KEY,\n   "key" TEXT NOT NULL\n)'),  # noqa: E501
    ("index", "telemetry_keys_key", 'CREATE UNIQUE INDEX "telemetry_keys_key"\n    ON "telemetry_keys" ("key")'),  # noqa: E501
]


def test_a_new_store_has_the_schema_sqlite_utils_made(make_store: MakeStore, db_path: Path) -> None:
    make_store().close()
    with sqlite3.connect(db_path) as conn:
        schema = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    # version 3 (the city layer's outbox) came after sqlite-utils: its own tables apart
    outbox = {"outbox", "outbox_kind_seq", "sqlite_sequence"}
    assert [row for row in schema if row[1] not in outbox] == SCHEMA_MADE_BY_SQLITE_UTILS
    assert {row[1] for row in schema} & outbox == outbox


def test_context_manager_starts_and_closes(db_path: Path) -> None:
    with Store(db_path) as store:
        store.record_event("controller", "inside").result(timeout=WAIT_S)
    assert not any(t.name == WRITER_THREAD_NAME for t in threading.enumerate())
    assert [e.reason for e in Store(db_path).events()] == ["inside"]


def test_memory_database_is_refused() -> None:
    with pytest.raises(ValueError):
        Store(":memory:")


def _sqlite_memory_used() -> int:
    """[B] what SQLite holds in this process (every connection: page caches, schemas,
    statements), from the library the standard `sqlite3` module is linked against."""
    import _sqlite3
    import ctypes

    library = ctypes.CDLL(_sqlite3.__file__)
    library.sqlite3_memory_used.restype = ctypes.c_int64
    return int(library.sqlite3_memory_used())


def test_the_writers_page_cache_stays_within_its_bound(make_store: MakeStore) -> None:
    """Telemetry touches new pages as its table grows, and SQLite's page cache keeps every
    page touched up to its size: with the default (2000 KiB) a gateway's memory grew for
    hours. About 2 MB of telemetry through the writer must leave SQLite holding not much
    more than the writer's cache (resilience.store.WRITER_CACHE_KIB) and its schema."""
    before = _sqlite_memory_used()
    store = make_store(clock=FakeClock())
    for i in range(1500):  # 80 series every 5 s for about 2 hours: 120 000 rows
        samples = {f"load_{k}.power_w": float(i + k) for k in range(80)}
        store.record_telemetry(1.7e9 + 5.0 * i, samples)
        if i % 250 == 249:
            assert store.flush(WAIT_S)
    assert store.flush(WAIT_S)
    held_kib = (_sqlite_memory_used() - before) / 1024
    assert held_kib < WRITER_CACHE_KIB + 256, f"SQLite holds {held_kib:.0f} KiB"
