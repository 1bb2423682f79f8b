"""Three sites and the EOC end to end over a real mosquitto: every site appears with its
state, events are committed once (a site's replay after a restart adds nothing twice) and
acknowledged (the sites' outboxes drain), and a site that loses power is flagged offline
by its last will."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from resilience.eoc.db import DETECTION_BUDGET_S, EocDb, SiteView
from resilience.eoc.service import BrokerSettings, EocService
from resilience.fleet import payloads
from tests.fleet.test_publisher import Site, fleet_section
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker, SiteAccount

ROOT = Path(__file__).resolve().parents[2]
SITES = [
    SiteAccount("kadikoy", "school-1"),
    SiteAccount("kadikoy", "school-2"),
    SiteAccount("uskudar", "mosque-1"),
]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", SITES)
    b.start()
    yield b
    b.stop()


async def until(service: EocService, predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not await asyncio.to_thread(predicate):
            service.changed.clear()
            await service.changed.wait()


async def test_three_sites_and_the_eoc(broker: Broker, tmp_path: Path) -> None:
    db = EocDb(tmp_path / "eoc.sqlite")
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    stop = asyncio.Event()
    eoc = asyncio.create_task(service.run(stop))
    sites: list[Site] = []
    try:
        await asyncio.wait_for(service.connected.wait(), 10)
        for n, account in enumerate(SITES[:2]):
            fleet = fleet_section(
                broker,
                tmp_path / f"s{n}",
                district=account.district,
                site_id=account.site,
                username=account.username,
            )
            site = Site(fleet, tmp_path / f"site{n}.sqlite")
            site.start()
            sites.append(site)
            for e in range(5):
                await site.store.committed(site.store.record_event("test", f"{account.site} e{e}"))
        # the third site in its own process: it will lose power
        third = SITES[2]
        (tmp_path / "pw3").write_text(third.password)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fleet.site_process",
                broker.host,
                str(broker.port),
                third.district,
                third.site,
                str(tmp_path / "pw3"),
                str(tmp_path / "site3.sqlite"),
                "5",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 15)
            assert line.strip() == "connected"
            await until(service, lambda: len(db.sites(time.time())) == 3)
            await until(service, lambda: all(v.events >= 5 for v in db.sites(time.time())[:2]))
            views = {(v.district, v.site): v for v in db.sites(time.time())}
            assert not views[("uskudar", "mosque-1")].offline
            assert views[("kadikoy", "school-1")].state is not None
            # acknowledged: the sites' outboxes drain of their events
            for site in sites:
                high = (
                    max(r.seq for r in site.store.outbox() if r.kind == "event")
                    if site.store.outbox()
                    else 0
                )
                await asyncio.wait_for(site.publisher.wait_acknowledged(high), 10)
            process.kill()  # power lost: no clean offline; the broker's will says it
            process.wait(10)
            await until(service, lambda: db.site("uskudar", "mosque-1", time.time()).offline)  # type: ignore[union-attr]
            view = db.site("uskudar", "mosque-1", time.time())
            assert view is not None and view.stale  # its data is no longer current
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        # a gateway restart replays what it had not been acknowledged; nothing twice
        before = db.seqs("kadikoy", "school-1")
        first = sites[0]
        await first.close()
        sites.remove(first)
        again = Site(first.publisher.fleet, tmp_path / "site0.sqlite")
        sites.append(again)
        again.start()
        await again.store.committed(again.store.record_event("test", "after restart"))
        await until(service, lambda: len(db.seqs("kadikoy", "school-1")) > len(before))
        seqs = db.seqs("kadikoy", "school-1")
        assert len(seqs) == len(set(seqs)) and set(before) <= set(seqs)
        reasons = [e["body"].get("reason") for e in db.events("kadikoy", "school-1")]
        assert reasons.count("school-1 e0") == 1 and "after restart" in reasons
    finally:
        for site in sites:
            await site.close()
        stop.set()
        await asyncio.wait_for(eoc, 10)
        db.close()


async def test_a_site_offline_for_an_hour_comes_back_with_nothing_lost_or_twice(
    broker: Broker, tmp_path: Path
) -> None:
    """An hour of events (one every 5 s, stamped over the last hour) recorded while the site
    had no link, then it connects: the EOC holds each exactly once, flagged historical, and
    the site's outbox drains. Then the same site restarts and replays: nothing twice."""
    db = EocDb(tmp_path / "eoc.sqlite")
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    stop = asyncio.Event()
    eoc = asyncio.create_task(service.run(stop))
    account = SITES[0]
    fleet = fleet_section(broker, tmp_path / "s", district=account.district, site_id=account.site)
    site = Site(fleet, tmp_path / "site.sqlite")
    try:
        await asyncio.wait_for(service.connected.wait(), 10)
        hour_ago = time.time() - 3600
        for k in range(720):  # the link is down: nothing publishes them yet
            site.store.record_event("test", f"offline {k}", ts=hour_ago + 5 * k)
        await site.store.committed(site.store.record_event("test", "link back"))
        site.start()

        def all_held() -> bool:
            return sum(v.events for v in db.sites(time.time())) >= 721

        await until(service, all_held, timeout_s=30)
        events = db.events(account.district, account.site, limit=1000)
        reasons = [e["body"]["reason"] for e in events]
        assert sorted(reasons) == sorted([f"offline {k}" for k in range(720)] + ["link back"])
        assert all(e["historical"] for e in events)
        high = max(e["seq"] for e in events)
        await asyncio.wait_for(site.publisher.wait_acknowledged(high), 10)
        await site.close()
        again = Site(fleet, tmp_path / "site.sqlite")  # a reboot replays what is left
        site = again
        again.start()
        await asyncio.wait_for(again.publisher.connected.wait(), 10)
        await again.store.committed(again.store.record_event("test", "rebooted"))
        await until(service, lambda: sum(v.events for v in db.sites(time.time())) >= 722)
        seqs = db.seqs(account.district, account.site)
        assert len(seqs) == len(set(seqs))
        assert len([e for e in db.events(account.district, account.site, limit=2000)]) == 722
    finally:
        await site.close()
        stop.set()
        await asyncio.wait_for(eoc, 10)
        db.close()


async def test_a_silent_site_is_flagged_offline_within_one_and_a_half_keepalives(
    broker: Broker, tmp_path: Path
) -> None:
    """A site whose software hangs with its TCP link up (the broker's keepalive pings go on:
    no will ever comes) is flagged by the EOC's own timer, committed and pushed, no later
    than 1.5 x its keepalive after its last message, and not before 1.5 x keepalive less
    the detection budget: a heartbeat a little late is not a dead site. An EOC starting
    meanwhile does not take the broker's retained "online" for the site being alive. Heard
    again, the flag goes. Keepalive 2 s (the birth says it): the test takes about 6 s."""
    keepalive_s = 2.0
    account = SITES[0]
    key = (account.district, account.site)
    db = EocDb(tmp_path / "eoc.sqlite")
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    stop = asyncio.Event()
    eoc = asyncio.create_task(service.run(stop))
    status_topic = f"shelter/v1/{account.district}/{account.site}/status"

    def beat() -> bytes:
        return payloads.encode(
            payloads.status_payload(True, session="s", ts=time.time(), keepalive_s=keepalive_s)
        )

    try:
        await asyncio.wait_for(service.connected.wait(), 10)
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username=account.username,
            password=account.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=60,
        ) as site:
            with service.watch() as changes:

                async def until(predicate: Callable[[SiteView], bool]) -> SiteView:
                    """The site's line once `predicate` holds, woken by the EOC's pushes."""
                    async with asyncio.timeout(10):
                        while True:
                            view = await asyncio.to_thread(db.site, *key, time.time())
                            if view is not None and predicate(view):
                                return view
                            await changes.take()

                # heartbeats at uneven moments, each well within the keepalive: online throughout
                last_heard = 0.0
                for gap_s in (0.0, 0.7, 1.6, 0.3):
                    await asyncio.sleep(gap_s)  # the site's own pacing, not a wait for a result
                    await site.publish(status_topic, beat(), qos=1, retain=True)
                    view = await until(lambda v, after=last_heard: (v.heard_ts or 0) > after)
                    assert not view.offline and view.offline_ts is None
                    last_heard = view.heard_ts or 0.0
                # silence: the timer flags it, and the listener hears of it without polling
                view = await until(lambda v: v.offline_ts is not None)
                assert view.offline and view.stale and view.offline_ts is not None
                silent_for = view.offline_ts - last_heard
                assert 1.5 * keepalive_s - DETECTION_BUDGET_S <= silent_for <= 1.5 * keepalive_s
                # an EOC starting now gets the retained "online" from the broker: that is the
                # broker's memory, not the site speaking, so the site is not taken for alive
                fresh_db = EocDb(tmp_path / "fresh.sqlite")
                fresh = EocService(
                    BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), fresh_db
                )
                fresh_stop = asyncio.Event()
                fresh_task = asyncio.create_task(fresh.run(fresh_stop))
                try:
                    async with asyncio.timeout(10):
                        while await asyncio.to_thread(fresh_db.site, *key, time.time()) is None:
                            fresh.changed.clear()
                            await fresh.changed.wait()
                    retained = await asyncio.to_thread(fresh_db.site, *key, time.time())
                    assert retained is not None and retained.status == "online"
                    assert retained.offline and retained.heard_ts is None
                finally:
                    fresh_stop.set()
                    await asyncio.wait_for(fresh_task, 10)
                    fresh_db.close()
                # heard again: online, the flag cleared
                await site.publish(status_topic, beat(), qos=1, retain=True)
                view = await until(lambda v: not v.offline)
                assert view.offline_ts is None
    finally:
        stop.set()
        await asyncio.wait_for(eoc, 10)
        db.close()
