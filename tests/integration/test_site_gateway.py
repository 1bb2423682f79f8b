"""The controller runs a site whose load panels and grid meter share one Modbus TCP gateway.

`tests.gateway_site`: panel_main (unit 1), panel_v2l (unit 2) and the grid meter
(unit 3) behind one host:port, served by one firmware_sim server; the controller
reaches them over one shared connection, one request at a time. A grid loss must
island the site as on the reference wiring, judged on the plant's own record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.server import SimSite
from resilience.model import BreakerPosition, Mode, Tier
from resilience.service import quiet_pymodbus, start, stop_running
from tests.gateway_site import GATEWAY_UNITS, gateway_site
from tests.integration.test_site import Site, bus_loads_on
from tests.sites import without_endurance_policy

pytestmark = pytest.mark.integration


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    quiet_pymodbus()
    config = without_endurance_policy(gateway_site())
    async with SimSite(config, bind_free_ports=True) as sim:
        running = await start(sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        state = Site(sim, running, config, changed)
        try:
            yield state
        finally:
            await stop_running(state.running)


async def test_grid_loss_islands_a_site_behind_one_gateway(site: Site) -> None:
    gateway = {site.sim.ports[name] for name in GATEWAY_UNITS}
    assert len(gateway) == 1
    endpoints = {(d.host, d.port) for d in site.sim.controller_config().devices.values()}
    assert len(site.running.pool.buses) == len(endpoints)  # one bus for the gateway's three
    await site.mode(Mode.GRID_CONNECTED, 5)
    bus_loads = [load.id for load in site.config.loads if load.supply == "bus"]
    await site.until(
        lambda: all(site.plant.load_on(load) for load in bus_loads),
        5,
        "every load on while grid-connected",
    )
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 5)
    assert site.plant.breaker_position is BreakerPosition.OPEN
    assert site.plant.bus_live
    await site.until(
        lambda: (
            len(bus_loads_on(site, Tier.LIFE_SAFETY)) == 4
            and len(bus_loads_on(site, Tier.CRITICAL)) == 4
        ),
        5,
        "life-safety and critical loads restored in island",
    )
    assert all(site.running.controller.slots[name].available for name in GATEWAY_UNITS)
    site.assert_safe()
