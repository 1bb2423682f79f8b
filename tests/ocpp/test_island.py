"""An island formed by a Modbus charger and followed by OCPP 2.1 stations, judged by the plant.

The reference site with everything real but the field: its Modbus devices are
`firmware_sim` servers on loopback, its two OCPP stations (`ocpp_1`, `ocpp_2`) are
simulated OCPP 2.1 stations (`firmware_sim.ocpp_station`) on the plant's charger model,
connecting over WebSockets to the controller's own central system (`service.start`).
Every safety rule is judged on what the plant recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from firmware_sim.plant import PlantInit
from firmware_sim.server import SimSite
from resilience.config import SiteConfig, load_site
from resilience.model import BreakerPosition, ChargerMode, Mode
from resilience.service import quiet_pymodbus, start, stop_running
from tests.integration import test_site as integration
from tests.sites import without_endurance_policy

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "config" / "site.toml"
PASSWORDS = tomllib.loads((REPO / "config" / "ocpp-demo-passwords.toml").read_text("utf-8"))
STATIONS = ("ocpp_1", "ocpp_2")

pytestmark = pytest.mark.integration


def island_site() -> SiteConfig:
    """The reference site with its OCPP stations, short timers, the central system on a
    free port and the endurance policy off (the island's mechanics, every load on)."""
    config = without_endurance_policy(load_site(SITE))
    assert set(STATIONS) <= set(config.ocpp_stations)
    return config.model_copy(
        update={
            "grid": config.grid.model_copy(update={"return_to_service_s": 2.0}),
            "ocpp": config.ocpp.model_copy(update={"port": 0, "max_offline_duration_s": 2}),
        }
    )


class Site(integration.Site):
    """The integration tests' site (`until`: wait cycle by cycle), with the OCPP views."""

    def mode(self) -> Mode | None:  # type: ignore[override]
        status = self.running.controller.status
        return status.mode if status is not None else None

    def vehicle(self, charger_id: str) -> object:
        status = self.running.controller.status
        assert status is not None
        return next(v for v in status.snapshot.vehicles if v.charger_id == charger_id)


@contextlib.asynccontextmanager
async def running_site(
    config: SiteConfig,
    tmp_path: Path,
    init: PlantInit | None = None,
    prepare: Callable[[SimSite], None] | None = None,
) -> AsyncIterator[Site]:
    """The simulated site of `config`, `prepare`d, a controller on it and its stations
    connected to the controller's central system; the controller stopped afterwards."""
    quiet_pymodbus()
    async with SimSite(config, bind_free_ports=True, init=init) as sim:
        if prepare is not None:
            prepare(sim)
        running = await start(sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        state = Site(sim, running, config, changed)
        try:
            assert running.csms is not None
            await sim.start_stations(running.csms.url, PASSWORDS)
            yield state
        finally:
            await stop_running(state.running)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(island_site(), tmp_path) as state:
        yield state


def exporting(site: Site, charger_id: str, at_least_w: float = 500.0) -> bool:
    return site.plant.charger_power_w(charger_id) >= at_least_w


async def test_island_with_a_modbus_former_and_ocpp_followers(site: Site) -> None:
    plant = site.plant
    await site.until(
        lambda: site.mode() is Mode.GRID_CONNECTED
        and all(getattr(site.vehicle(s), "available", False) for s in STATIONS),
        15,
        "grid_connected with both OCPP stations read",
    )
    plant.set_pv_available(0.0)  # night: the cars carry the island
    plant.grid_loss()
    await site.until(lambda: site.mode() is Mode.ISLANDED, 15, "islanded")
    assert plant.breaker_position is BreakerPosition.OPEN
    # the former is a Modbus charger; the OCPP stations follow with real discharge
    formers = plant.former_ids
    assert formers and all(f.startswith("charger_") for f in formers), formers
    await site.until(
        lambda: all(exporting(site, s) for s in STATIONS), 15, "both OCPP stations exporting"
    )
    for station in STATIONS:
        assert plant.chargers[station].mode_command is ChargerMode.FOLLOW
        vehicle = plant.chargers[station].vehicle
        assert vehicle is not None and vehicle.soc_pct > vehicle.reserve_soc_pct
    assert plant.violations == []

    # Cut one station's link mid-island: it keeps its setpoint for max_offline_duration,
    # then falls back to its Idle profile by itself; the controller rebalances on the rest.
    cut = site.sim.stations["ocpp_1"]
    cut.cut_link()
    await site.until(
        lambda: cut.model.deadman_fallback_s is not None, 10, "ocpp_1 at zero export"
    )
    assert cut.model.deadman_fallback_s is not None
    assert cut.model.deadman_fallback_s <= 2 + 1.0
    await site.until(
        lambda: not getattr(site.vehicle("ocpp_1"), "available", True), 10, "ocpp_1 unavailable"
    )
    assert plant.bus_live and site.mode() in (Mode.ISLANDED, Mode.EMERGENCY)
    assert exporting(site, "ocpp_2")
    assert plant.violations == []

    # Back: it reconnects, boots, is given its profiles again and follows once more.
    cut.restore_link()
    await site.until(lambda: exporting(site, "ocpp_1"), 20, "ocpp_1 exporting again")
    assert plant.violations == []

    # The grid returns: resynchronised and closed by the Modbus former, followers stop.
    plant.grid_return()
    await site.until(lambda: site.mode() is Mode.GRID_CONNECTED, 40, "back on the grid")
    assert plant.breaker_position is BreakerPosition.CLOSED
    assert plant.violations == []


async def test_a_car_with_active_anti_islanding_never_discharges_into_the_island(
    site: Site,
) -> None:
    """Its impedance measurement would fight the former: the plant never sees it export,
    the alarm says why, and the island is carried by the others."""
    plant = site.plant
    site.sim.stations["ocpp_2"].model.car.islanding_methods = ("ImpedanceMeasurement",)
    await site.until(
        lambda: site.mode() is Mode.GRID_CONNECTED
        and "ocpp_anti_islanding:ocpp_2" in site.running.controller.modes.memory.active_alarms,
        15,
        "the anti-islanding alarm",
    )
    plant.set_pv_available(0.0)
    plant.grid_loss()
    await site.until(lambda: exporting(site, "ocpp_1"), 20, "ocpp_1 exporting in the island")
    peak = 0.0
    for _ in range(40):  # two seconds of the island, cycle by cycle
        await site.until(lambda: True, 1, "a cycle")
        await asyncio.sleep(0.05)
        peak = max(peak, plant.charger_power_w("ocpp_2"))
    assert peak <= 0.5, peak
    assert plant.bus_live and plant.violations == []
