"""The SQLite store locked or out of disk, and the wall clock jumping.

Control goes on whatever the disk does; the store keeps every record in memory
and catches up when the disk comes back; an operator command is answered only
once its audit row is on disk (nothing acknowledged is lost); the controller
raises `store_unhealthy` meanwhile. Wall-clock jumps change no decision: the
mode machine's timers run on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.cycle import Controller, SiteStatus
from resilience.model import Mode
from resilience.service import Running, build_drivers, quiet_pymodbus, stop_running
from resilience.store import Store
from resilience.transport.modbus import BusPool
from tests.faults.conftest import FaultSite, running_site, site_config, warnings_about


async def transitions_in_store(site: FaultSite) -> list[str]:
    store = site.running.store
    assert await asyncio.to_thread(store.flush, 20.0)
    events = await asyncio.to_thread(store.events, kinds=["transition"], limit=100)
    return [str(e.mode_to) for e in reversed(events)]


async def outage_while_the_store_fails(site: FaultSite) -> asyncio.Task[object]:
    """Lose the grid and ask for a command while nothing can be written."""
    message = await site.alarm_raised("store_unhealthy", 15)
    assert "control goes on" in message
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 15)  # control went on
    site.plant.excuse_load("lift")
    command = asyncio.create_task(
        site.running.controller.submit(
            "shed_load", {"load_id": "lift"}, actor="ayse", role="operator"
        )
    )
    cycles = site.running.controller.stats.cycles
    await site.until(lambda: site.running.controller.stats.cycles > cycles + 25, 10, "cycles")
    assert not command.done(), "a command was answered before its audit row was written"
    return command


async def check_caught_up(site: FaultSite, command: asyncio.Task[object]) -> None:
    result = await asyncio.wait_for(command, 20)
    assert getattr(result, "outcome", None) == "accepted"
    await site.alarm_cleared("store_unhealthy", 20)
    path = await transitions_in_store(site)
    assert path[-3:] == ["islanding", "black_start", "islanded"], path
    commands = await asyncio.to_thread(site.running.store.commands, limit=10)
    assert [(c.command, c.actor) for c in commands][:1] == [("shed_load", "ayse")]
    stored = await site.stored_alarms("store_unhealthy")
    assert len(stored) == 1 and stored[0].cleared_ts is not None
    site.assert_safe()


async def test_locked_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="resilience")
    async with running_site(tmp_path, "tcp") as site:
        await site.mode(Mode.GRID_CONNECTED, 10)
        assert await asyncio.to_thread(site.running.store.flush, 10.0)
        blocker = sqlite3.connect(site.running.store.path, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            command = await outage_while_the_store_fails(site)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await check_caught_up(site, command)
        assert len(warnings_about(caplog, "write failed")) == 1
        assert len(warnings_about(caplog, "writes recovered")) == 1


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only), unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk is full."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(chunk)
    return filler


async def test_disk_full(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """On a full disk some commits still fit in pages SQLite already has, so the store may
    come and go; what matters is that control goes on, the alarm is raised, and whatever
    was answered is on disk once there is room again."""
    caplog.set_level(logging.INFO, logger="resilience")
    with small_disk(tmp_path / "disk") as disk:
        async with running_site(disk, "tcp") as site:
            await site.mode(Mode.GRID_CONNECTED, 10)
            assert await asyncio.to_thread(site.running.store.flush, 10.0)
            filler = await asyncio.to_thread(fill, disk)
            commands: list[asyncio.Task[object]] = []
            try:
                # telemetry and events keep coming; the first failing commit trips the alarm
                site.running.controller.store.record_event("test", "disk is full now", data={})
                await site.alarm_raised("store_unhealthy", 15)
                site.plant.grid_loss()
                await site.mode(Mode.ISLANDED, 15)  # control went on
                for n in range(5):
                    submit = site.running.controller.submit(
                        "restore_load", {"load_id": "lift"}, actor=f"disk-{n}", role="operator"
                    )
                    commands.append(asyncio.create_task(submit))
                cycles = site.running.controller.stats.cycles
                await site.until(
                    lambda: site.running.controller.stats.cycles > cycles + 25, 10, "cycles"
                )
                failures = warnings_about(caplog, "write failed")
                assert any("full" in r.getMessage() for r in failures)
            finally:
                filler.unlink()
            answered = await asyncio.wait_for(asyncio.gather(*commands), 30)
            assert all(getattr(r, "outcome", None) == "accepted" for r in answered)
            await site.alarm_cleared("store_unhealthy", 20)
            path = await transitions_in_store(site)
            assert path[-3:] == ["islanding", "black_start", "islanded"], path
            stored = await asyncio.to_thread(site.running.store.commands)
            assert {f"disk-{n}" for n in range(5)} <= {c.actor for c in stored}
            site.assert_safe()


# ------------------------------------------------------------------------------ the clock
class JumpingWall:
    """The wall clock, plus an offset a test changes (an NTP step, an RTC reset)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


@pytest.fixture
async def jumping(tmp_path: Path) -> AsyncIterator[tuple[FaultSite, JumpingWall]]:
    quiet_pymodbus()
    config = site_config("tcp", return_to_service_s=3.0)
    wall = JumpingWall()
    async with SimSite(config, bind_free_ports=True) as sim:
        controller_config = sim.controller_config()
        store = Store(tmp_path / "site.sqlite", clock=wall)
        store.start()
        pool = BusPool()
        drivers = build_drivers(controller_config, pool)
        controller = Controller(controller_config, drivers, store, wall=wall)
        stop = asyncio.Event()
        task = asyncio.create_task(controller.run(stop))
        running = Running(controller, store, pool, stop, task)
        changed = asyncio.Event()
        controller.on_status(lambda _s: changed.set())
        site = FaultSite(sim, running, config, changed, "tcp")
        try:
            yield site, wall
        finally:
            await stop_running(running)


async def test_wall_clock_jumps_change_no_decision(
    jumping: tuple[FaultSite, JumpingWall], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="resilience")
    site, wall = jumping
    loop = asyncio.get_running_loop()
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 10)
    site.plant.grid_return()
    returned = loop.time()
    wall.offset_s += 86400.0  # a day forward: must not make the grid "healthy long enough"
    message = await site.alarm_raised("clock_jump", 5)
    assert "+86400" in message
    await site.until(lambda: loop.time() - returned > 1.0, 5, "a second")
    wall.offset_s -= 7200.0  # then back: must not make it wait longer either
    await site.mode(Mode.RESYNCHRONISING, 10)
    waited = loop.time() - returned
    assert 3.0 - 0.1 <= waited <= 3.0 + 1.5, waited
    await site.mode(Mode.GRID_CONNECTED, 20)
    assert len(warnings_about(caplog, "wall clock jumped")) == 2
    site.assert_safe()
    status: SiteStatus = site.status
    assert status.mode is Mode.GRID_CONNECTED
