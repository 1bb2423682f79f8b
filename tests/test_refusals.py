"""Refused calls in the audit trail: coalesced to a bounded number of rows per actor and
minute, with exact counts; pruned after `refusal_retention_days`; accepted commands
always get a row each and are never pruned."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience.retention import DAY_S, prune_refusals_once, prune_telemetry_forever
from resilience.store import (
    OVERFLOW_COMMAND,
    REFUSAL_ROWS_PER_MINUTE,
    Store,
    _migrate_to_v1,
)

T0 = 1_800_000_000.0  # a whole minute: T0 % 60 == 0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "site.sqlite")
    store.start()
    yield store
    store.close()


def refuse(store: Store, ts: float, actor: str = "tablet", command: str = "POST /x") -> None:
    store.record_command(actor, "viewer", command, {}, "forbidden", "role: viewer may not", ts=ts)


def test_a_burst_of_repeats_is_one_row_with_its_count(store: Store) -> None:
    assert T0 % 60 == 0
    for i in range(500):
        refuse(store, T0 + i * 0.1)  # 50 s of hammering
    assert store.flush(10.0)
    (row,) = store.commands()
    assert row.count == 500 and row.ts == T0 and row.last_ts == pytest.approx(T0 + 49.9)
    assert row.outcome == "forbidden" and row.actor == "tablet"


def test_the_next_minute_starts_a_new_row(store: Store) -> None:
    for i in range(180):
        refuse(store, T0 + i)  # three minutes, one call a second
    assert store.flush(10.0)
    rows = store.commands()
    assert [r.count for r in rows] == [60, 60, 60]


def test_distinct_refusals_beyond_the_limit_share_one_row_per_outcome(store: Store) -> None:
    extra = 25
    for i in range(REFUSAL_ROWS_PER_MINUTE + extra):
        refuse(store, T0 + 1, command=f"POST /api/v1/loads/load_{i}/shed")
    for _ in range(30):  # the first ones repeated still count on their own rows
        refuse(store, T0 + 2, command="POST /api/v1/loads/load_0/shed")
    store.record_command("tablet", "viewer", "ack", {}, "rejected", "bad id", ts=T0 + 3)
    assert store.flush(10.0)
    rows = store.commands(limit=100)
    assert len(rows) == REFUSAL_ROWS_PER_MINUTE + 2  # + one overflow row per outcome
    overflow = {r.outcome: r for r in rows if r.command == OVERFLOW_COMMAND}
    assert overflow["forbidden"].count == extra
    assert "load_34/shed" in overflow["forbidden"].detail  # the last one is named
    assert overflow["rejected"].count == 1
    first = next(r for r in rows if r.command == "POST /api/v1/loads/load_0/shed")
    assert first.count == 31
    assert sum(r.count for r in rows) == REFUSAL_ROWS_PER_MINUTE + extra + 30 + 1


def test_actors_do_not_share_rows_and_accepted_commands_are_never_coalesced(
    store: Store,
) -> None:
    for _ in range(3):
        refuse(store, T0 + 5, actor="a")
        refuse(store, T0 + 5, actor="b")
        store.record_command("op", "operator", "reconnect", {}, "accepted", "ok", ts=T0 + 5)
    assert store.flush(10.0)
    rows = store.commands()
    assert sorted((r.actor, r.count) for r in rows if r.outcome == "forbidden") == [
        ("a", 3),
        ("b", 3),
    ]
    assert [r.count for r in rows if r.outcome == "accepted"] == [1, 1, 1]


async def test_old_refusals_are_pruned_and_accepted_commands_kept(store: Store) -> None:
    for day in (40, 31, 29, 1):
        refuse(store, T0 - day * DAY_S)
        store.record_command(
            "op", "operator", "shed_load", {}, "accepted", "ok", ts=T0 - day * DAY_S
        )
    assert store.flush(10.0)
    assert await prune_refusals_once(store, 30.0, wall=lambda: T0) == 2
    rows = store.commands()
    assert sorted(round((T0 - r.ts) / DAY_S) for r in rows if r.outcome == "forbidden") == [1, 29]
    assert len([r for r in rows if r.outcome == "accepted"]) == 4


async def test_the_retention_loop_prunes_refusals_too(store: Store) -> None:
    refuse(store, T0 - 10 * DAY_S)
    assert store.flush(10.0)
    stop = asyncio.Event()
    task = asyncio.create_task(
        prune_telemetry_forever(
            store, 30.0, stop, refusal_retention_days=7.0, every_s=0.05, wall=lambda: T0
        )
    )
    try:
        for _ in range(200):
            if not await asyncio.to_thread(store.commands):
                break
            await asyncio.sleep(0.01)
        assert await asyncio.to_thread(store.commands) == []
    finally:
        stop.set()
        await task


def test_a_version_1_file_is_migrated_with_its_commands(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    _migrate_to_v1(db)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    db.execute(
        "INSERT INTO commands (ts, actor, role, command, args, outcome, detail)"
        " VALUES (?, 'op', 'operator', 'reconnect', '{}', 'refused', 'grid not healthy')",
        [T0],
    )
    db.commit()
    db.close()
    with Store(path) as store:
        (row,) = store.commands()
        assert row.count == 1 and row.last_ts is None and row.detail == "grid not healthy"
        refuse(store, T0 + 1, actor="op")
        assert store.flush(10.0)
        assert len(store.commands()) == 2
