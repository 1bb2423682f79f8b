"""Telemetry retention: old samples go, the audit trail stays, the file stops growing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.config import ConfigError, load_site, parse_site
from resilience.retention import DAY_S, prune_once, prune_telemetry_forever
from resilience.service import quiet_pymodbus, start, stop_running
from resilience.store import Store
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"
NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "site.sqlite")
    store.start()
    yield store
    store.close()


def fill(store: Store, days: int, per_day: int = 24) -> None:
    for day in range(days):
        for hour in range(per_day):
            ts = NOW - day * DAY_S - hour * 3600.0
            store.record_telemetry(ts, {"charger_1.soc_pct": 50.0, "grid.power_w": 1000.0})
    store.record_event("transition", "an old event", ts=NOW - days * DAY_S)
    assert store.flush(10.0)


async def test_prune_keeps_the_retention_window_and_the_events(store: Store) -> None:
    fill(store, days=10)
    deleted = await prune_once(store, 3.0, wall=lambda: NOW)
    assert deleted == 2 * (10 - 3) * 24 - 2  # both series, everything older than 3 days
    series = store.telemetry("charger_1.soc_pct")
    assert min(ts for ts, _ in series) >= NOW - 3 * DAY_S
    assert len(series) == 3 * 24 + 1
    assert [e.reason for e in store.events()] == ["an old event"]  # the audit trail stays


async def test_the_file_stops_growing_once_the_window_is_full(store: Store) -> None:
    """Deleted pages are reused: a steady stream of samples keeps the file bounded (the WAL
    grows to SQLite's auto-checkpoint size, about 4 MB, then is reused from its start)."""
    sizes = []
    for week in range(12):
        base = NOW + week * 7 * DAY_S
        for minute in range(7 * 24 * 6):  # one sample of 10 series every 10 minutes
            store.record_telemetry(
                base + minute * 600.0, {f"series_{n}.value": float(minute) for n in range(10)}
            )
        assert store.flush(30.0)
        await prune_once(store, 7.0, wall=lambda base=base: base + 7 * DAY_S)
        assert store.flush(30.0)
        sizes.append(sum(p.stat().st_size for p in store.path.parent.glob("site.sqlite*")))
        assert len(store.telemetry("series_0.value")) == 7 * 24 * 6
    assert max(sizes[-4:]) <= min(sizes[-4:]) * 1.02, sizes
    assert sizes[-1] < 8 * 1024 * 1024, sizes


async def test_pruning_runs_periodically_until_stopped(store: Store) -> None:
    fill(store, days=5)
    clock = [NOW]
    stop = asyncio.Event()
    task = asyncio.create_task(
        prune_telemetry_forever(store, 2.0, stop, every_s=0.05, wall=lambda: clock[0])
    )
    await asyncio.sleep(0.2)
    remaining = len(store.telemetry("grid.power_w"))
    assert remaining == 2 * 24 + 1
    clock[0] += DAY_S  # a day later, the next turn prunes another day
    await asyncio.sleep(0.2)
    assert len(store.telemetry("grid.power_w")) == 24 + 1
    stop.set()
    await asyncio.wait_for(task, 2.0)


def test_retention_is_validated() -> None:
    import tomllib

    data = tomllib.loads(SITE.read_text(encoding="utf-8"))
    assert load_site(SITE).site.telemetry_retention_days == 30.0
    data["site"]["telemetry_retention_days"] = 0
    with pytest.raises(ConfigError) as caught:
        parse_site(data, "site.toml")
    assert caught.value.problems[0].key == "site.telemetry_retention_days"


async def test_the_service_prunes(tmp_path: Path) -> None:
    quiet_pymodbus()
    config = modbus_only(load_site(SITE))
    config = config.model_copy(
        update={"site": config.site.model_copy(update={"telemetry_retention_days": 1.0})}
    )
    seeded = Store(tmp_path / "s.sqlite")
    seeded.start()
    seeded.record_telemetry(1.0, {"charger_1.soc_pct": 10.0})  # 1970: long past retention
    assert seeded.flush(10.0)
    seeded.close()
    async with SimSite(config, bind_free_ports=True) as sim:
        controller_config = sim.controller_config()
        running = await start(controller_config, store_path=str(tmp_path / "s.sqlite"))
        try:
            assert [t.get_name() for t in running.background] == ["telemetry-retention"]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while (1.0, 10.0) in await asyncio.to_thread(
                running.store.telemetry, "charger_1.soc_pct"
            ):
                assert loop.time() < deadline, "the service did not prune at start"
                await asyncio.sleep(0.05)
        finally:
            await stop_running(running)
        assert all(t.done() for t in running.background)
