"""The controller against a mixed site: Modbus TCP, Modbus RTU on RS-485, and a line protocol.

The four chargers and the V2L relay panel sit on one simulated RS-485 line
(firmware_sim.rtu over a socat pty pair, 115200 baud 8N2, unit ids 1-5, each
frame delayed by its transmission time); the second V2L outlet is a meter with
an ASCII line protocol (driver v2l_serial) on a pty of its own; the rest stays on
Modbus TCP. The same outage as tests/integration/test_site.py must run the same
way, with no safety violation recorded by the plant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.config import SiteConfig, cross_check, load_site
from resilience.model import BreakerPosition, Mode, Tier
from resilience.service import quiet_pymodbus, start, stop_running
from tests.integration.test_site import Site, bus_loads_on
from tests.serial_lines import mixed_site, needs_socat, socat_pair
from tests.sites import modbus_only, without_endurance_policy

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
RETURN_TO_SERVICE_S = 2.0
RTU_DEVICES = ("charger_1", "charger_2", "charger_3", "charger_4", "panel_v2l")

pytestmark = [pytest.mark.integration, needs_socat]


def rtu_site(rtu_port: str, v2l_port: str) -> SiteConfig:
    # the transports are under test: the endurance policy off, every load the island carries
    config = without_endurance_policy(modbus_only(load_site(SITE)))
    config = config.model_copy(
        update={"grid": config.grid.model_copy(update={"return_to_service_s": RETURN_TO_SERVICE_S})}
    )
    config = mixed_site(config, rtu_port, RTU_DEVICES, serial={"v2l_2": v2l_port})
    assert cross_check(config) == []
    return config


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    quiet_pymodbus()
    async with (
        socat_pair(tmp_path, "rs485") as (rtu_ctl, rtu_sim),
        socat_pair(tmp_path, "v2l") as (v2l_ctl, v2l_sim),
    ):
        config = rtu_site(rtu_ctl, v2l_ctl)
        links = {rtu_ctl: rtu_sim, v2l_ctl: v2l_sim}
        async with SimSite(config, bind_free_ports=True, serial_links=links) as sim:
            running = await start(sim.controller_config(), store_path=str(tmp_path / "s.sqlite"))
            changed = asyncio.Event()
            running.controller.on_status(lambda _status: changed.set())
            state = Site(sim, running, config, changed)
            try:
                yield state
            finally:
                await stop_running(state.running)


async def test_outage_over_rtu_and_a_serial_meter(site: Site) -> None:
    await site.mode(Mode.GRID_CONNECTED, 10)
    # Every bus load; on each V2L circuit, what its car's energy affords (the endurance
    # policy, issue 11), which is at least its top tier.
    await site.until(
        lambda: (
            all(site.plant.load_on(load.id) for load in site.config.loads if load.supply == "bus")
            and all(
                any(site.plant.load_on(load.id) for load in site.config.loads if load.supply == o)
                for o in site.config.outlets
            )
        ),
        10,
        "every bus load on while grid-connected, and every V2L circuit live",
    )
    assert site.plant.outlets["v2l_2"].enabled  # switched through the line protocol
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 10)
    assert site.plant.breaker_position is BreakerPosition.OPEN
    assert site.plant.former_ids and site.plant.former_ids[0] in RTU_DEVICES
    await site.until(
        lambda: (
            len(bus_loads_on(site, Tier.LIFE_SAFETY)) == 4
            and len(bus_loads_on(site, Tier.CRITICAL)) == 4
        ),
        10,
        "life-safety and critical loads restored in island",
    )
    site.plant.grid_return()
    await site.mode(Mode.RESYNCHRONISING, RETURN_TO_SERVICE_S + 5)
    await site.mode(Mode.GRID_CONNECTED, 30)
    assert site.plant.breaker_position is BreakerPosition.CLOSED
    health = {h.device_id: h.available for h in site.status.snapshot.health}
    assert all(health.values()), health
    site.assert_safe()
    # the RS-485 line really carried the traffic, at most one exchange in flight
    rtu_line = next(iter(site.sim.lines.values()))
    assert rtu_line.frames_sent > 50
