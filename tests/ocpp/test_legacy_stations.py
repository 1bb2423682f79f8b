"""Simulated OCPP 2.0.1 and 1.6 stations against our central system, judged by the plant.

The reference site (Modbus former, real Modbus servers on loopback) with its two OCPP
stations declared 2.0.1 and 1.6 instead of 2.1 (`firmware_sim.ocpp_legacy`), over real
WebSockets to the controller's central system. With `discharge_method = "negative_limit"`
the 2.0.1 one helps carry the island by a negative TxDefaultProfile limit; with "none"
neither ever exports; a limit in amperes is taken as the station would take it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from firmware_sim.ocpp_faults import inject_station_fault
from firmware_sim.ocpp_legacy import SimStation16, SimStation201, to_watts
from firmware_sim.ocpp_model import ChargingProfile, SchedulePeriod
from resilience.config import SiteConfig
from resilience.model import BreakerPosition, Mode
from tests.ocpp.test_island import Site, exporting, island_site, running_site

pytestmark = pytest.mark.integration

VERSIONS = {"ocpp_1": "2.0.1", "ocpp_2": "1.6"}


def legacy_site(discharge_method: str) -> SiteConfig:
    config = island_site()
    devices = dict(config.devices)
    for name, version in VERSIONS.items():
        device = devices[name]
        assert device.ocpp is not None
        station = device.ocpp.model_copy(
            update={"version": version, "discharge_method": discharge_method}
        )
        devices[name] = device.model_copy(update={"ocpp": station})
    return config.model_copy(update={"devices": devices})


@pytest.fixture
async def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(legacy_site(request.param), tmp_path) as state:
        yield state


async def read_and_islanded(site: Site) -> None:
    await site.until(
        lambda: site.mode() is Mode.GRID_CONNECTED
        and all(getattr(site.vehicle(s), "available", False) for s in VERSIONS),
        15,
        "grid_connected with both stations read",
    )
    site.plant.set_pv_available(0.0)
    site.plant.grid_loss()
    await site.until(lambda: site.mode() is Mode.ISLANDED, 15, "islanded")


@pytest.mark.parametrize("legacy", ["negative_limit"], indirect=True)
async def test_a_negative_limit_station_follows_into_the_island(legacy: Site) -> None:
    site, plant = legacy, legacy.plant
    stations = site.sim.stations
    assert isinstance(stations["ocpp_1"], SimStation201)
    assert isinstance(stations["ocpp_2"], SimStation16)
    await read_and_islanded(site)
    # 2.0.1 tells the car's capacity (NotifyEVChargingNeeds): discharged by a negative
    # limit. 1.6 has no way to tell it: its energy above the reserve is unknown, so it
    # weighs nothing in the proportional split and gives only what the others cannot
    # (nothing here: the former and the 2.0.1 station carry this island).
    await site.until(lambda: exporting(site, "ocpp_1"), 15, "the 2.0.1 station exporting")
    assert plant.charger_power_w("ocpp_2") <= 0.5
    # 1.6: StartTransaction answered with the central system's id, kept for the Stop
    assert stations["ocpp_2"].transaction_16 is not None
    for name in VERSIONS:
        profile = stations[name].model.active_profile()
        assert profile is not None and profile.purpose == "TxDefaultProfile"
    limit = stations["ocpp_1"].model.active_profile().period.limit  # type: ignore[union-attr]
    assert limit is not None and limit < 0
    assert plant.violations == []
    plant.grid_return()
    await site.until(lambda: site.mode() is Mode.GRID_CONNECTED, 40, "back on the grid")
    assert plant.breaker_position is BreakerPosition.CLOSED
    # the car leaves the 1.6 station: StopTransaction with that id, the reading follows
    plant.unplug("ocpp_2")
    await site.until(
        lambda: not getattr(site.vehicle("ocpp_2"), "plugged", True)
        and stations["ocpp_2"].transaction_16 is None,
        10,
        "ocpp_2's car gone",
    )
    assert "StopTransaction" in [action for _, action in stations["ocpp_2"].sent]
    # an out-of-schema message from each: a CALLERROR back (schema checked on the wire)
    for name in VERSIONS:
        inject_station_fault(stations[name], "out_of_schema")
    await site.until(
        lambda: all(stations[n].out_of_schema_replies for n in VERSIONS), 5, "CALLERRORs"
    )
    for name in VERSIONS:
        assert stations[name].out_of_schema_replies[0][0] == 4  # CALLERROR
    assert plant.violations == []


@pytest.mark.parametrize("legacy", ["none"], indirect=True)
async def test_charging_only_stations_never_export(legacy: Site) -> None:
    site, plant = legacy, legacy.plant
    await read_and_islanded(site)
    peak: dict[str, float] = dict.fromkeys(VERSIONS, 0.0)
    for _ in range(40):  # 2 s of island: the Modbus former carries it alone
        await asyncio.sleep(0.05)
        for name in VERSIONS:
            peak[name] = max(peak[name], plant.charger_power_w(name))
    assert all(p <= 0.5 for p in peak.values()), peak
    assert site.mode() in (Mode.ISLANDED, Mode.EMERGENCY) and plant.bus_live
    for name in VERSIONS:
        assert not site.sim.stations[name].model.rejections, site.sim.stations[name].model
    assert plant.violations == []


def test_an_ampere_limit_is_turned_into_watts_per_phase() -> None:
    profile = ChargingProfile(
        id=1,
        stack_level=0,
        purpose="TxDefaultProfile",
        kind="Absolute",
        rate_unit="A",
        periods=[SchedulePeriod(limit=16.0), SchedulePeriod(start_period=60, limit=10.0)],
    )
    watts = to_watts(profile, [3, 1])
    assert watts.rate_unit == "W"
    assert [p.limit for p in watts.periods] == [16.0 * 230 * 3, 10.0 * 230]
    assert profile.rate_unit == "A"  # the original untouched
