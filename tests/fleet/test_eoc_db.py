"""The EOC's store: rows kept once, acknowledgements only over what is held (gaps wait,
the sender's floor does not), a replay acknowledged again, offline and stale judged."""

from __future__ import annotations

from pathlib import Path

from resilience.eoc.db import DETECTION_BUDGET_S, EocDb, Row


def row(seq: int, floor: int = 1) -> Row:
    return Row("d1", "s1", seq, floor, "sess", 100.0 + seq, "event", False, {"n": seq})


def test_rows_once_and_acknowledgements_over_what_is_held(tmp_path: Path) -> None:
    db = EocDb(tmp_path / "eoc.sqlite")
    assert db.put_rows([row(1), row(2), row(4)], now=200.0) == {("d1", "s1"): 2}  # 3 missing
    assert db.put_rows([row(3)], now=201.0) == {("d1", "s1"): 4}
    # a replay: nothing stored twice, and acknowledged again (the last ack may have been lost)
    assert db.put_rows([row(1), row(2)], now=202.0) == {("d1", "s1"): 4}
    assert db.seqs("d1", "s1") == [1, 2, 3, 4] and db.duplicates == 2
    # 5 and 6 were dropped by the site's full outbox: its floor says so, no waiting for them
    assert db.put_rows([row(7, floor=7)], now=203.0) == {("d1", "s1"): 7}
    db.close()


def test_offline_and_stale(tmp_path: Path) -> None:
    db = EocDb(tmp_path / "eoc.sqlite")
    birth = {"status": "online", "session": "a", "ts": 100.0}
    db.put_status("d1", "s1", {**birth, "keepalive_s": 30, "state_max_interval_s": 60}, now=100.0)
    db.put_state("d1", "s1", {"name": "School", "mode": "islanded", "updated_ts": 100.0}, now=100.0)
    [unheard] = db.sites(now=100.0)  # retained copies only: never heard live, not online
    assert unheard.offline
    db.put_heard([("d1", "s1")], now=100.0)
    [fresh] = db.sites(now=120.0)
    assert not fresh.offline and not fresh.stale and fresh.state == {
        "name": "School", "mode": "islanded", "updated_ts": 100.0
    }  # fmt: skip
    deadline = 100.0 + 1.5 * 30 - DETECTION_BUDGET_S  # within 1.5 x keepalive, not on it
    assert db.next_change(120.0) == {("d1", "s1"): deadline}
    [still] = db.sites(now=deadline - 0.01)  # unknown for a moment is not offline
    assert not still.offline and not db.mark_silent([("d1", "s1")], deadline - 0.01)
    [silent] = db.sites(now=deadline)  # no heartbeat: offline at the deadline, read or timer
    assert silent.offline and silent.stale and silent.offline_ts is None
    assert db.mark_silent([("d1", "s1")], deadline + 0.002) == {("d1", "s1")}
    assert not db.mark_silent([("d1", "s1")], deadline + 0.003)  # flagged once
    [flagged] = db.sites(now=deadline + 0.01)
    assert flagged.offline and flagged.offline_ts == deadline + 0.002
    # flagged: nothing is left to happen by time alone (offline is stale already)
    assert db.next_change(deadline + 0.01) == {("d1", "s1"): None}
    db.put_status("d1", "s1", {**birth, "ts": 220.0}, now=220.0)  # heartbeats, no new state
    db.put_heard([("d1", "s1")], now=220.0)  # heard again: the flag goes
    assert db.next_change(220.0) == {("d1", "s1"): 100.0 + 2 * 60 + 5}  # its state turns stale
    [old] = db.sites(now=100.0 + 2 * 60 + 6)  # past twice state_max_interval_s (+5 s)
    assert old.stale and not old.offline and old.offline_ts is None
    db.put_status("d1", "s1", {"status": "offline", "session": "a", "ts": 160.0}, now=160.0)
    [gone] = db.sites(now=161.0)
    assert gone.offline and gone.stale  # the will: its last data is not current
    assert gone.offline_ts == 160.0 and db.next_change(161.0) == {("d1", "s1"): None}
    # an older retained state delivered late never overwrites a newer one
    db.put_state("d1", "s1", {"mode": "grid_connected", "updated_ts": 90.0}, now=162.0)
    assert db.sites(now=162.0)[0].state["mode"] == "islanded"  # type: ignore[index]
    db.close()


def test_named_sites_are_read_alone_in_batches(tmp_path: Path) -> None:
    """A live push names the few sites that changed: only their lines are read (in
    batches past SQLite's parameter limit), in the table's order; none named, none read."""
    db = EocDb(tmp_path / "eoc.sqlite")
    birth = {"status": "online", "session": "a", "ts": 100.0, "keepalive_s": 30}
    keys = [(f"d{i % 3}", f"s{i:04d}") for i in range(900)]
    for district, site in keys:
        db.put_status(district, site, birth, now=100.0)
    assert len(db.sites(now=101.0)) == 900
    named = keys[::2]  # 450: two batches
    views = db.sites(now=101.0, keys=reversed(named))
    assert [(v.district, v.site) for v in views] == sorted(named)
    assert db.sites(now=101.0, keys=[]) == []
    assert [v.site for v in db.sites(now=101.0, district="d1", keys=keys[:6])] == [
        "s0001",
        "s0004",
    ]
    assert db.site("d2", "s0005", now=101.0) is not None
    assert db.site("d2", "s0006", now=101.0) is None  # s0006 is in d0
    db.close()
