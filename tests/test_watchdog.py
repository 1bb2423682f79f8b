"""sd_notify and the systemd watchdog, against a fake NOTIFY_SOCKET (a unix datagram socket)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.config import load_site
from resilience.model import Mode
from resilience.service import quiet_pymodbus, start, stop_running
from resilience.watchdog import Notifier, Watchdog, watchdog_interval_s
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    try:
        yield fake
    finally:
        fake.close()


def test_notifier_sends_datagrams(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(systemd.path)})
    assert notifier.enabled
    assert notifier.notify("READY=1")
    assert notifier.notify("WATCHDOG=1")
    assert systemd.drain() == ["READY=1", "WATCHDOG=1"]


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.notify("READY=1")


def test_abstract_socket_name(tmp_path: Path) -> None:
    name = f"resilience-test-{id(tmp_path)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier(f"@{name}").notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone.sock")).notify("WATCHDOG=1")


def test_watchdog_interval_is_half_the_period() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None


async def test_ready_only_once_every_device_answered_or_was_declared_silent(
    systemd: FakeSystemd, tmp_path: Path
) -> None:
    """READY=1 means "the field has been read": not on a first cycle whose requests are
    still connecting (the PCC breaker unheard yet), only once each device answered or,
    silent through its start-up grace, was declared unavailable (a dead panel must not
    hold the unit in "activating" until systemd kills it)."""
    quiet_pymodbus()
    config = modbus_only(load_site(SITE))
    async with SimSite(config, bind_free_ports=True) as sim:
        sim.plant.silence("pcc_breaker")
        sim.plant.silence("panel_v2l")
        running = await start(sim.controller_config(), store_path=str(tmp_path / "s.sqlite"))
        controller = running.controller
        environ = {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "200000"}
        watchdog = Watchdog.from_environment(controller, environ)
        ready_at: list[tuple[int, int] | None] = []

        def on_status(status: object) -> None:
            was = watchdog.ready
            watchdog.on_status(status)  # type: ignore[arg-type]
            if watchdog.ready and not was:
                ready_at.append(controller.field_read())

        controller.on_status(on_status)
        cycled = asyncio.Event()
        controller.on_status(lambda _s: cycled.set())
        try:
            for _ in range(3):
                cycled.clear()
                await asyncio.wait_for(cycled.wait(), 5)
            assert not watchdog.ready and systemd.drain() == []
            sim.plant.clear_fault("pcc_breaker")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not watchdog.ready:
                assert loop.time() < deadline, "never READY"
                cycled.clear()
                await asyncio.wait_for(cycled.wait(), 5)
            assert ready_at == [(len(config.devices) - 1, 1)]
            assert controller.slots["pcc_breaker"].available
            assert not controller.slots["panel_v2l"].available
            assert systemd.drain()[0] == "READY=1"
        finally:
            await stop_running(running)


async def test_ready_then_watchdog_only_while_healthy(systemd: FakeSystemd, tmp_path: Path) -> None:
    quiet_pymodbus()
    config = modbus_only(load_site(SITE))
    async with SimSite(config, bind_free_ports=True) as sim:
        running = await start(sim.controller_config(), store_path=str(tmp_path / "s.sqlite"))
        controller = running.controller
        environ = {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "200000"}
        watchdog = Watchdog.from_environment(controller, environ)
        assert watchdog.interval_s == pytest.approx(0.1)
        controller.on_status(watchdog.on_status)
        changed = asyncio.Event()
        controller.on_status(lambda _s: changed.set())

        async def until(predicate: object, what: str, timeout_s: float = 10.0) -> None:
            assert callable(predicate)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while not predicate():
                assert loop.time() < deadline, f"timed out waiting for {what}"
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), deadline - loop.time())

        try:
            await until(lambda: watchdog.pings >= 3, "three pings")
            received = systemd.drain()
            assert received[0] == "READY=1"
            assert "STATUS=mode grid_connected" in received or "STATUS=mode starting" in received
            assert received.count("WATCHDOG=1") >= 3
            # the store cannot write: no more pings, though the cycle goes on
            blocker = sqlite3.connect(running.store.path, isolation_level=None)
            try:
                blocker.execute("BEGIN EXCLUSIVE")
                controller.store.record_event("test", "forces a write now", data={})
                await until(lambda: not controller.store.healthy, "store unhealthy")
                pings = watchdog.pings
                cycles = controller.stats.cycles
                await until(lambda: controller.stats.cycles > cycles + 30, "30 cycles")
                assert watchdog.pings == pings
                assert controller.status is not None
                assert controller.status.mode is Mode.GRID_CONNECTED
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            await until(lambda: watchdog.pings > pings, "pings again after recovery")
            # a cycle that starts late (a stalled loop) is not pinged for
            late = controller.stats.starts[-1] + 10.0
            controller.stats.starts.append(late)
            assert watchdog.healthy() is not None and "cycle late" in str(watchdog.healthy())
        finally:
            await stop_running(running)
