"""A grid meter's reply that comes after its cycle's read wait is acted on when it comes.

The reference site over real Modbus TCP on loopback, every device answering at once but
the grid meter, which answers each request 0.3 s late: past the cycle's read wait (half
of its 0.5 s period), within its timeout. So every meter reply lands between cycles. At a
grid loss, the reply that shows the dead grid must open the PCC when it comes, not a
period later (where the next cycle would also wait for a fresh meter read first): the
plant records when the meter answered and when the breaker took the open command.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.latency import DeviceLatency, LatencyModel
from firmware_sim.server import SimSite
from resilience.drivers.registers import PccBreaker
from resilience.model import BreakerCommand, BreakerPosition, Mode
from resilience.service import quiet_pymodbus, start, stop_running
from tests.integration.test_site import site_config

pytestmark = pytest.mark.integration

PERIOD_S = 0.5
METER_LATE_S = 0.3  # > the read wait (cycle.READ_WAIT_FRACTION x PERIOD_S = 0.25 s)


def fixed(delay_s: float) -> DeviceLatency:
    return DeviceLatency(LatencyModel("fixed", delay_s, 0.0, 0.0, delay_s, delay_s), "fixed")


def serves(device_id: str, devices: Any) -> bool:
    return any(d.device_id == device_id for d in devices)


async def test_a_late_meter_reply_showing_a_dead_grid_opens_the_pcc_when_it_comes(
    tmp_path: Path,
) -> None:
    quiet_pymodbus()
    config = site_config()
    config = config.model_copy(
        update={
            "site": config.site.model_copy(update={"cycle_period_s": PERIOD_S}),
            "devices": {
                name: (
                    device.model_copy(update={"timeout_s": 0.45})
                    if name == config.grid.meter
                    else device
                )
                for name, device in config.devices.items()
            },
        }
    )
    async with SimSite(config, bind_free_ports=True, instant=True) as sim:
        meter_id = config.grid.meter
        (server,) = (s for s in sim.servers.values() if serves(meter_id, s.devices.values()))
        server.latencies[meter_id] = fixed(METER_LATE_S)
        meter_answers: list[tuple[float, bool]] = []  # (when, the grid it showed was live)
        open_commands: list[float] = []
        meter = sim.devices[config.grid.meter]
        breaker = sim.devices[config.grid.pcc_breaker]
        meter_read, breaker_write = meter.read, breaker.write

        def on_meter_read(address: int, count: int) -> Any:
            meter_answers.append((time.monotonic(), sim.plant.grid_present))
            return meter_read(address, count)

        def on_breaker_write(address: int, values: Any) -> Any:
            if (
                address <= PccBreaker.COMMAND < address + len(values)
                and values[PccBreaker.COMMAND - address] == BreakerCommand.OPEN
            ):
                open_commands.append(time.monotonic())
            return breaker_write(address, values)

        meter.read = on_meter_read  # type: ignore[method-assign]
        breaker.write = on_breaker_write  # type: ignore[method-assign]
        running = await start(sim.controller_config(), store_path=str(tmp_path / "s.sqlite"))
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())

        async def until(predicate: Any, timeout_s: float) -> None:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    changed.clear()
                    await changed.wait()

        try:
            await until(
                lambda: (
                    (status := running.controller.status) is not None
                    and status.mode is Mode.GRID_CONNECTED
                    and len(meter_answers) > 3
                ),
                30,
            )
            sim.plant.grid_loss()
            await until(lambda: sim.plant.breaker_position is BreakerPosition.OPEN, 10)
            first_dead = next(t for t, live in meter_answers if not live)
            opened = open_commands[0]
            # the reply left the meter at `first_dead`; the next cycle starts no sooner
            # than PERIOD_S - METER_LATE_S after it, and would then wait for its reads
            assert first_dead < opened < first_dead + (PERIOD_S - METER_LATE_S), (
                f"PCC open command {opened - first_dead:.3f} s after the meter showed the"
                " dead grid: not acted on when the reply came"
            )
            assert running.controller.stats.reactions >= 1
            assert sim.plant.violations == []
        finally:
            await stop_running(running)
