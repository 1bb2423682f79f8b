"""The site's publisher against a real mosquitto: state, events, birth and will; store and
forward through a broker SIGKILL and a gateway restart, nothing lost, nothing shown twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience.config import FleetSection
from resilience.fleet.publisher import FleetPublisher
from resilience.store import Store
from tests.fleet.eoc_receiver import Receiver
from tools.mqtt_broker import Broker, SiteAccount

SITE = SiteAccount("kadikoy", "school-1")
KEY = "kadikoy/school-1"
PREFIX = "shelter/v1/kadikoy/school-1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", [SITE])
    b.start()
    yield b
    b.stop()


def fleet_section(broker: Broker, tmp_path: Path, **overrides: Any) -> FleetSection:
    tmp_path.mkdir(parents=True, exist_ok=True)
    password = tmp_path / "mqtt-password"
    password.write_text(SITE.password + "\n")
    return FleetSection.model_validate(
        {
            "broker_host": broker.host,
            "broker_port": broker.port,
            "district": SITE.district,
            "site_id": SITE.site,
            "username": SITE.username,
            "password_file": str(password),
            "keepalive_s": 5,
            "state_min_interval_s": 1,
            "resend_after_s": 5,
            **overrides,
        }
    )


class Site:
    """A store with an outbox, a state the test sets, and a publisher running."""

    def __init__(self, fleet: FleetSection, path: Path) -> None:
        self.store = Store(path, outbox_max_rows=fleet.outbox_max_rows)
        self.store.start()
        self.state: dict[str, Any] = {"schema": 1, "mode": "grid_connected", "updated_ts": 1.0}
        self.publisher = FleetPublisher(fleet, self.store, lambda: dict(self.state))
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.publisher.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 15)
        await asyncio.to_thread(self.store.close)


@contextlib.asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[Receiver]:
    stop = asyncio.Event()
    task = asyncio.create_task(receiver.run(stop))
    try:
        yield receiver
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_state_events_birth_and_acknowledged_rows_leave_the_outbox(
    broker: Broker, tmp_path: Path
) -> None:
    site = Site(fleet_section(broker, tmp_path), tmp_path / "site.sqlite")
    async with running(Receiver(broker)) as eoc:
        site.start()
        await asyncio.wait_for(site.publisher.connected.wait(), 10)
        seqs = [
            await site.store.committed(site.store.record_event("mode", f"e{n}")) for n in range(3)
        ]
        site.state["mode"] = "islanded"
        await eoc.until(lambda: eoc.retained.get(f"{PREFIX}/state", {}).get("mode") == "islanded")
        await eoc.until(lambda: eoc.retained.get(f"{PREFIX}/status", {}).get("status") == "online")
        await eoc.until(
            lambda: len([r for r in eoc.rows.get(KEY, {}).values() if r["kind"] == "event"]) == 3
        )
        events = [r for r in eoc.rows[KEY].values() if r["kind"] == "event"]
        assert [e["body"]["reason"] for e in events] == ["e0", "e1", "e2"]
        assert all(e["session"] == site.publisher.session and not e["historical"] for e in events)
        assert len(seqs) == 3
        high = max(eoc.rows[KEY])
        await asyncio.wait_for(site.publisher.wait_acknowledged(high), 10)
        assert all(row.seq > high for row in site.store.outbox())  # acknowledged: gone
        await site.close()  # a clean stop says offline itself
        await eoc.until(lambda: eoc.retained[f"{PREFIX}/status"]["status"] == "offline")


async def test_a_broker_killed_mid_stream_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    site = Site(fleet_section(broker, tmp_path), tmp_path / "site.sqlite")
    async with running(Receiver(broker)) as eoc:
        site.start()
        await asyncio.wait_for(site.publisher.connected.wait(), 10)
        for n in range(40):
            if n == 15:
                broker.kill()  # SIGKILL: what it had PUBACKed since its last save is gone
            if n == 30:
                broker.start()  # same port
            await site.store.committed(site.store.record_event("test", f"e{n}"))
        await eoc.until(
            lambda: (
                sorted(
                    r["body"]["reason"]
                    for r in eoc.rows.get(KEY, {}).values()
                    if r["kind"] == "event"
                )
                == sorted(f"e{n}" for n in range(40))
            ),
            timeout_s=30,
        )
        assert eoc.connects >= 2 and site.publisher.connects >= 2
        await site.close()


async def test_a_gateway_restart_replays_what_was_not_acknowledged(
    broker: Broker, tmp_path: Path
) -> None:
    fleet = fleet_section(broker, tmp_path)
    path = tmp_path / "site.sqlite"
    first = Site(fleet, path)
    async with running(Receiver(broker, acknowledge=False)) as deaf:  # the EOC does not ack
        first.start()
        for n in range(5):
            await first.store.committed(first.store.record_event("test", f"e{n}"))
        await deaf.until(
            lambda: len([r for r in deaf.rows.get(KEY, {}).values() if r["kind"] == "event"]) == 5
        )
    await first.close()  # the gateway goes down with 5 rows unacknowledged
    with Store(path) as store:
        assert len([r for r in store.outbox() if r.kind == "event"]) >= 5

    second = Site(fleet, path)  # it reboots: a new session, the same outbox
    async with running(Receiver(broker)) as eoc:
        second.start()
        await eoc.until(
            lambda: len([r for r in eoc.rows.get(KEY, {}).values() if r["kind"] == "event"]) >= 5
        )
        events = sorted(
            (r for r in eoc.rows[KEY].values() if r["kind"] == "event"), key=lambda r: r["seq"]
        )
        assert [e["body"]["reason"] for e in events[:5]] == [f"e{n}" for n in range(5)]
        assert all(e["historical"] and e["session"] == second.publisher.session for e in events[:5])
        await asyncio.wait_for(second.publisher.wait_acknowledged(events[4]["seq"]), 10)
        assert all(r.seq > events[4]["seq"] for r in second.store.outbox())
    await second.close()


async def test_rows_the_broker_took_while_the_eoc_was_away_are_replayed_on_its_birth(
    broker: Broker, tmp_path: Path
) -> None:
    """The broker PUBACKs these rows, but nobody is subscribed: only the EOC's acknowledgement
    may delete them, and its birth message brings them back (historical)."""
    site = Site(fleet_section(broker, tmp_path, resend_after_s=600), tmp_path / "site.sqlite")
    site.start()
    await asyncio.wait_for(site.publisher.connected.wait(), 10)
    for n in range(5):
        last = await site.store.committed(site.store.record_event("test", f"e{n}"))
    seq = max(row.seq for row in site.store.outbox() if row.body.get("id") == last)
    await asyncio.wait_for(site.publisher.wait_sent(seq), 10)  # PUBACKed, and nobody listens
    async with running(Receiver(broker)) as eoc:
        await eoc.until(
            lambda: len([r for r in eoc.rows.get(KEY, {}).values() if r["kind"] == "event"]) == 5
        )
        events = [r for r in eoc.rows[KEY].values() if r["kind"] == "event"]
        assert all(e["historical"] for e in events)
    await site.close()
