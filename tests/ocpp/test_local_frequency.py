"""LocalFrequency over the real stack: sharing by frequency survives a lost link.

The reference site with drooping Modbus grid-formers (`droop_hz = 1.0`) and its two OCPP
2.1 stations declared LocalFrequency-capable; Modbus devices are `firmware_sim` servers on
loopback, the stations simulated OCPP 2.1 stations over WebSockets to the controller's own
central system (`service.start`). One station's link is cut mid-island: past
`max_offline_duration_s` it keeps sharing on its curve (its export follows the frequency,
the former's share is what the droop says), past `local_frequency_offline_s` it is Idle.
Judged on what the plant recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.ocpp_model import curve_power_w
from firmware_sim.server import SimSite
from resilience.config import SiteConfig, cross_check
from resilience.model import Mode
from resilience.ocpp.local_frequency import LOCAL_FREQUENCY_PROFILE_ID
from resilience.service import quiet_pymodbus, start, stop_running
from tests.ocpp.test_island import PASSWORDS, STATIONS, Site, exporting, island_site

pytestmark = pytest.mark.integration

DROOP_HZ = 1.0
MAX_OFFLINE_S = 2
LOCAL_FREQUENCY_OFFLINE_S = 6
SMALL_CAR_W = 2000.0


def local_frequency_site() -> SiteConfig:
    config = island_site()
    devices = dict(config.devices)
    for name in ("charger_1", "charger_2"):
        devices[name] = devices[name].model_copy(update={"droop_hz": DROOP_HZ})
    for name in STATIONS:
        device = devices[name]
        assert device.ocpp is not None
        ocpp = device.ocpp.model_copy(update={"local_frequency": True})
        devices[name] = device.model_copy(update={"ocpp": ocpp})
    # The other followers' cars give at most 2 kW each: the island's 10.4 kW is more than
    # they can carry, so the former keeps a share and the droop has something to say.
    vehicles = [
        v.model_copy(update={"max_discharge_w": SMALL_CAR_W})
        if v.charger in ("charger_2", "charger_3", "charger_4", "ocpp_2")
        else v
        for v in config.vehicles
    ]
    config = config.model_copy(
        update={
            "devices": devices,
            "vehicles": vehicles,
            "ocpp": config.ocpp.model_copy(
                update={
                    "max_offline_duration_s": MAX_OFFLINE_S,
                    "local_frequency_offline_s": LOCAL_FREQUENCY_OFFLINE_S,
                }
            ),
        }
    )
    assert cross_check(config) == []
    return config


async def start_site(tmp_path: Path, *, unsupported: tuple[str, ...] = ()) -> AsyncIterator[Site]:
    quiet_pymodbus()
    config = local_frequency_site()
    async with SimSite(config, bind_free_ports=True) as sim:
        running = await start(sim.controller_config(), store_path=str(tmp_path / "site.sqlite"))
        changed = asyncio.Event()
        running.controller.on_status(lambda _status: changed.set())
        state = Site(sim, running, config, changed)
        try:
            assert running.csms is not None
            await sim.start_stations(running.csms.url, PASSWORDS)
            for name in unsupported:  # before their task first runs: nothing was sent yet
                sim.stations[name].model.local_frequency = False
            yield state
        finally:
            await stop_running(state.running)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async for state in start_site(tmp_path):
        yield state


@pytest.fixture
async def site_one_unsupported(tmp_path: Path) -> AsyncIterator[Site]:
    async for state in start_site(tmp_path, unsupported=("ocpp_2",)):
        yield state


def share_w(site: Site, name: str) -> float:
    driver = site.running.csms.drivers[name] if site.running.csms else None
    assert driver is not None and driver.local_frequency_share is not None
    return driver.local_frequency_share.discharge_w


def installed(site: Site, name: str) -> bool:
    csms = site.running.csms
    assert csms is not None
    return csms.drivers[name].local_frequency_share is not None


async def islanded_with_both_exporting(site: Site) -> None:
    plant = site.plant
    await site.until(
        lambda: (
            site.mode() is Mode.GRID_CONNECTED
            and all(getattr(site.vehicle(s), "available", False) for s in STATIONS)
        ),
        15,
        "grid_connected with both OCPP stations read",
    )
    plant.set_pv_available(0.0)
    plant.grid_loss()
    await site.until(lambda: site.mode() is Mode.ISLANDED, 15, "islanded")
    await site.until(
        lambda: all(exporting(site, s) for s in STATIONS), 15, "both OCPP stations exporting"
    )


async def test_a_cut_station_keeps_sharing_by_frequency_then_goes_idle(site: Site) -> None:
    plant = site.plant
    await islanded_with_both_exporting(site)
    await site.until(lambda: all(installed(site, s) for s in STATIONS), 10, "LocalFrequency")
    assert plant.former_ids == ("charger_1",), [e for e in plant.log if e.kind != "charger"][-30:]
    former = "charger_1"
    rating = plant.chargers[former].rating_w
    # While the link is up CentralSetpoint (stack 2) rules over LocalFrequency (stack 1).
    cut = site.sim.stations["ocpp_1"]
    levels = {p.id: p.stack_level for p in cut.model.profiles.values()}
    assert levels[LOCAL_FREQUENCY_PROFILE_ID] == 1 and levels[2] == 2 and levels[1] == 0
    assert cut.model.active_profile().period.operation_mode == "CentralSetpoint"  # type: ignore[union-attr]
    share = share_w(site, "ocpp_1")
    assert share > 0

    cut.cut_link()
    cut_s = plant.time_s
    await site.until(
        lambda: cut.model.local_frequency_since_s is not None, 10, "ocpp_1 in LocalFrequency"
    )
    assert cut.model.local_frequency_since_s is not None
    assert cut.model.local_frequency_since_s - cut_s <= MAX_OFFLINE_S + 0.5
    await asyncio.sleep(2.0)  # its frequency-watt response settles (1 s time constant)

    def on_its_curve() -> bool:
        period = cut.model.active_profile().period  # type: ignore[union-attr]
        wanted = -curve_power_w(period.freq_watt, plant.bus_frequency_hz)
        return abs(plant.charger_power_w("ocpp_1") - wanted) <= 0.02 * share

    await site.until(on_its_curve, 3, "ocpp_1 on its curve")
    # The droop: the island sits where the former's load puts it, and the station carries
    # the same fraction of its share as the former of its rating.
    p_former = plant.charger_power_w(former)
    assert plant.bus_frequency_hz == pytest.approx(50.0 - DROOP_HZ * p_former / rating)
    assert plant.charger_power_w("ocpp_1") == pytest.approx(
        share * p_former / rating, abs=0.02 * share
    )
    assert p_former > 500.0 and exporting(site, "ocpp_1", 500.0)  # a real share each
    # More load: the frequency falls and the station's export follows it up.
    before = plant.charger_power_w("ocpp_1")
    plant.set_load_factor("network", 3.0)
    await site.until(
        lambda: plant.charger_power_w("ocpp_1") > before + 100.0, 5, "ocpp_1 following the load"
    )
    assert plant.bus_live and plant.violations == []

    # Past its own bound it falls to Idle; the controller carries on without it.
    await site.until(
        lambda: (
            LOCAL_FREQUENCY_PROFILE_ID not in cut.model.profiles
            and plant.charger_power_w("ocpp_1") <= 0.5
        ),
        LOCAL_FREQUENCY_OFFLINE_S + 3,
        "ocpp_1 Idle",
    )
    assert plant.time_s - cut_s <= LOCAL_FREQUENCY_OFFLINE_S + 1.5
    assert not getattr(site.vehicle("ocpp_1"), "available", True)
    assert plant.bus_live and site.mode() in (Mode.ISLANDED, Mode.EMERGENCY)
    assert exporting(site, "ocpp_2")
    assert plant.violations == []

    # Back: CentralSetpoint above, LocalFrequency beneath again.
    cut.restore_link()
    await site.until(
        lambda: exporting(site, "ocpp_1") and installed(site, "ocpp_1"), 20, "ocpp_1 back"
    )
    assert cut.model.active_profile().period.operation_mode == "CentralSetpoint"  # type: ignore[union-attr]
    assert plant.violations == []


async def test_a_station_that_rejects_local_frequency_alarms_once_and_goes_idle(
    site_one_unsupported: Site,
) -> None:
    site = site_one_unsupported
    plant = site.plant
    await islanded_with_both_exporting(site)
    alarm = "ocpp_local_frequency:ocpp_2"
    memory = site.running.controller.modes.memory
    await site.until(lambda: alarm in memory.active_alarms, 10, "the alarm")
    assert installed(site, "ocpp_1") and not installed(site, "ocpp_2")
    station = site.sim.stations["ocpp_2"]
    rejected = [r for r in station.model.rejections if "LocalFrequency" in r]
    assert len(rejected) == 1, station.model.rejections  # not retried on this connection
    station.cut_link()
    await site.until(
        lambda: station.model.deadman_fallback_s is not None, 10, "ocpp_2 at zero export"
    )
    assert station.model.deadman_fallback_s is not None
    assert station.model.deadman_fallback_s <= MAX_OFFLINE_S + 1.0
    assert station.model.local_frequency_since_s is None
    assert plant.bus_live and plant.violations == []
