"""Fault injection against the real controller and the simulated site, over TCP and over RTU.

`make_site(transport)` starts firmware_sim and the controller (`service.start`,
with its supervisor, store and drivers) on a temporary store:

- "tcp": the reference site, every device on Modbus TCP on loopback;
- "rtu": the breaker, the four chargers, the first V2L outlet and the V2L relay
  panel on one simulated RS-485 line (Modbus RTU, 115200 baud 8N2, socat pty pair),
  the second V2L outlet a line-protocol meter (driver v2l_serial) on its own pty,
  the grid meter, main panel and PV on Modbus TCP.

Tests wait on the controller's status cycle by cycle with generous deadlines
(`FaultSite.until`), never on bare sleeps, and judge safety on the plant
(`plant.violations`), not on what the controller believes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.plant import PlantInit
from firmware_sim.server import SimSite
from resilience.config import SiteConfig, cross_check, load_site
from resilience.service import quiet_pymodbus, start, stop_running
from tests.integration.test_site import Site
from tests.serial_lines import SOCAT, mixed_site, socat_pair
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
RTU_DEVICES = (
    "pcc_breaker",
    "charger_1",
    "charger_2",
    "charger_3",
    "charger_4",
    "v2l_1",
    "panel_v2l",
)
SERIAL_DEVICE = "v2l_2"
FIELD_ACTIONS = ("relay", "charger", "breaker", "bus", "outlet")
TRANSPORTS = [
    "tcp",
    pytest.param("rtu", marks=pytest.mark.skipif(SOCAT is None, reason="no socat")),
]


def site_config(transport: str, rtu_port: str = "", v2l_port: str = "", **grid: Any) -> SiteConfig:
    config = modbus_only(load_site(SITE))
    config = config.model_copy(
        update={"grid": config.grid.model_copy(update={"return_to_service_s": 2.0, **grid})}
    )
    if transport == "rtu":
        config = mixed_site(
            config, rtu_port, RTU_DEVICES, serial={SERIAL_DEVICE: v2l_port}
        )
    assert cross_check(config) == []
    return config


@dataclass
class FaultSite(Site):
    transport: str = "tcp"

    def alarm(self, code: str) -> str | None:
        status = self.running.controller.status
        return None if status is None else status.alarms.get(code)

    async def alarm_raised(self, code: str, timeout_s: float = 10.0) -> str:
        await self.until(lambda: self.alarm(code) is not None, timeout_s, f"alarm {code}")
        message = self.alarm(code)
        assert message is not None
        return message

    async def alarm_cleared(self, code: str, timeout_s: float = 10.0) -> None:
        await self.until(lambda: self.alarm(code) is None, timeout_s, f"alarm {code} cleared")

    async def settled(self, cycles: int, timeout_s: float) -> None:
        """Wait until the plant has seen `cycles` controller cycles in a row with nothing in the
        field switched or started: a site that is done with its own transitions, so that what
        happens next is the test's doing. Judged on the plant's log, not on a fixed count of
        cycles (an RS-485 cycle is five times a TCP one, and settling is paced by time)."""
        controller = self.running.controller
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            mark, start = len(self.plant.log), controller.stats.cycles
            await self.until(
                lambda start=start: controller.stats.cycles >= start + cycles,  # type: ignore[misc]
                deadline - loop.time(),
                f"{cycles} cycles in a row with nothing switched or started",
            )
            if not self.field_actions(mark):
                return

    def field_actions(self, mark: int) -> list[str]:
        """What the plant logged being switched or started since `mark`."""
        return [f"{e.kind}: {e.detail}" for e in self.plant.log[mark:] if e.kind in FIELD_ACTIONS]

    def available(self, device: str) -> bool:
        return self.running.controller.slots[device].available

    async def stored_alarms(self, code: str) -> list[Any]:
        store = self.running.store
        assert await asyncio.to_thread(store.flush, 10.0)
        return [a for a in await asyncio.to_thread(store.alarms, limit=500) if a.code == code]


MakeSite = Callable[..., Any]


@asynccontextmanager
async def running_site(
    tmp_path: Path,
    transport: str,
    *,
    init: PlantInit | None = None,
    **grid: Any,
) -> AsyncIterator[FaultSite]:
    quiet_pymodbus()
    async with AsyncExitStack() as stack:
        links: dict[str, str] = {}
        rtu_port = v2l_port = ""
        if transport == "rtu":
            rtu_port, rtu_sim = await stack.enter_async_context(socat_pair(tmp_path, "rs485"))
            v2l_port, v2l_sim = await stack.enter_async_context(socat_pair(tmp_path, "v2l"))
            links = {rtu_port: rtu_sim, v2l_port: v2l_sim}
        config = site_config(transport, rtu_port, v2l_port, **grid)
        sim = await stack.enter_async_context(
            SimSite(config, bind_free_ports=True, init=init, serial_links=links)
        )
        running = await start(sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        site = FaultSite(sim, running, config, changed, transport)
        try:
            yield site
        finally:
            await stop_running(site.running)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def site(tmp_path: Path, transport: str) -> AsyncIterator[FaultSite]:
    async with running_site(tmp_path, transport) as site:
        yield site


def warnings_about(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and words in r.getMessage()]


def infos_about(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.INFO and words in r.getMessage()]
