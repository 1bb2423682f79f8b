"""The store's outbox (store and forward to the EOC): written with the record it mirrors,
bounded with telemetry dropped first and the drop said, deleted only by an acknowledgement,
and sequence numbers never reused."""

from __future__ import annotations

from pathlib import Path

from resilience.store import OUTBOX_DROPPED_KEY, Store


def test_no_outbox_rows_without_fleet(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.record_event("mode", "islanded").result(5)
        assert store.outbox() == []


def test_events_alarms_and_accepted_commands_are_queued_with_their_records(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite", outbox_max_rows=100) as store:
        event_id = store.record_event("mode", "islanded", mode_to="islanded", data={"a": 1}).result(
            5
        )
        store.raise_alarm("grid_lost", "critical", "grid lost").result(5)
        store.raise_alarm("grid_lost", "critical", "grid lost").result(5)  # the same alarm: no row
        store.clear_alarm("grid_lost").result(5)
        store.record_command("op", "operator", "island", {}, "accepted").result(5)
        store.record_command("op", "viewer", "island", {}, "forbidden").result(5)  # audit only
        rows = store.outbox()
    assert [r.body["type"] for r in rows] == ["event", "alarm_raised", "alarm_cleared", "command"]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert rows[0].body["id"] == event_id and rows[0].body["data"] == {"a": 1}
    assert {r.kind for r in rows} == {"event"}


def test_ack_deletes_up_to_the_sequence_and_sequences_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, outbox_max_rows=100) as store:
        for n in range(5):
            store.record_event("test", f"e{n}").result(5)
        seqs = [r.seq for r in store.outbox()]
        assert store.outbox_ack(seqs[2]).result(5) == 3
        assert [r.seq for r in store.outbox()] == seqs[3:]
        store.outbox_ack(seqs[-1]).result(5)
        assert store.outbox_bounds() == (0, 0, seqs[-1])
    with Store(path, outbox_max_rows=100) as store:  # a gateway reboot
        store.record_event("test", "after").result(5)
        assert store.outbox()[0].seq == seqs[-1] + 1


def test_full_outbox_drops_telemetry_first_then_events_and_says_so(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite", outbox_max_rows=10) as store:
        store.record_event("test", "e0").result(5)
        for n in range(6):
            store.outbox_telemetry({"n": n}).result(5)
        for n in range(1, 6):
            store.record_event("test", f"e{n}").result(5)
        rows = store.outbox()
        assert len(rows) == 10
        # every event is kept; the telemetry went first, and one event says so
        reasons = [r.body.get("reason") for r in rows if r.kind == "event"]
        assert [f"e{n}" for n in range(6)] == [x for x in reasons if x and x.startswith("e")]
        notes = [r for r in rows if r.body.get("kind") == "fleet"]
        assert len(notes) == 1 and "outbox full" in notes[0].body["reason"]
        assert store.events(kinds=["fleet"])  # recorded locally as well
        dropped = store.get_state(OUTBOX_DROPPED_KEY)
        assert dropped["telemetry"] >= 2 and dropped["events"] == 0 and dropped["overflowing"]
        # only events left beyond the bound: the oldest events go, and still one note
        for n in range(6, 12):
            store.record_event("test", f"e{n}").result(5)
        rows = store.outbox()
        assert len(rows) == 10 and all(r.kind == "event" for r in rows)
        assert rows[-1].body["reason"] == "e11"
        assert len([r for r in rows if r.body.get("kind") == "fleet"]) <= 1
        assert store.get_state(OUTBOX_DROPPED_KEY)["events"] > 0
        store.outbox_ack(rows[-1].seq).result(5)  # acknowledged: a new episode may be said
        assert store.get_state(OUTBOX_DROPPED_KEY)["overflowing"] is False
