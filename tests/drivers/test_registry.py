"""The driver registry: config names -> classes, and build_driver on a shared bus pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import get_args

import pytest

from resilience.config import Device, DriverName, load_site
from resilience.drivers.bidirectional_charger import BidirectionalChargerDriver
from resilience.drivers.load_panel import LoadPanel
from resilience.drivers.pcc_breaker import PccBreaker
from resilience.drivers.registry import DRIVERS, PUSHED_DRIVERS, build_driver, driver_for
from resilience.drivers.sunspec_inverter import SunSpecInverter
from resilience.drivers.sunspec_meter import SunSpecMeter
from resilience.drivers.v2l_outlet import V2LOutletDriver
from resilience.drivers.v2l_serial import V2LSerialDriver
from resilience.ocpp import CentralSystem, OcppStationDriver
from resilience.transport.modbus import BusPool
from tests.drivers import banks
from tests.modbus_fakes import FakeUnit, fake_server

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"


@pytest.fixture
async def pool() -> AsyncIterator[BusPool]:
    pool = BusPool()
    yield pool
    await pool.close_all()


def test_every_config_driver_name_has_a_driver() -> None:
    assert set(DRIVERS) | PUSHED_DRIVERS == set(get_args(DriverName))
    assert {
        "sunspec_meter": SunSpecMeter,
        "pcc_breaker": PccBreaker,
        "load_panel": LoadPanel,
        "bidirectional_charger": BidirectionalChargerDriver,
        "v2l_outlet": V2LOutletDriver,
        "v2l_serial": V2LSerialDriver,
        "sunspec_inverter": SunSpecInverter,
    } == DRIVERS


def test_devices_on_one_endpoint_share_a_bus(pool: BusPool) -> None:
    meter = build_driver("grid_meter", Device(driver="sunspec_meter", port=15020, unit_id=1), pool)
    breaker = build_driver("pcc_breaker", Device(driver="pcc_breaker", port=15020, unit_id=2), pool)
    pv = build_driver("pv", Device(driver="sunspec_inverter", port=15050, rating_w=20_000.0), pool)
    assert isinstance(meter, SunSpecMeter)
    assert isinstance(breaker, PccBreaker)
    assert isinstance(pv, SunSpecInverter)
    assert meter.transport is breaker.transport
    assert pv.transport is not meter.transport
    assert (meter.unit_id, breaker.unit_id) == (1, 2)


def test_reference_site_builds_every_device(pool: BusPool) -> None:
    site = load_site(SITE)
    csms = CentralSystem(site)  # not listening: it only makes the stations' drivers
    drivers = {
        name: build_driver(name, device, pool, csms) for name, device in site.devices.items()
    }
    for name, driver in drivers.items():
        if site.devices[name].driver == "ocpp":
            assert isinstance(driver, OcppStationDriver)
        else:
            assert isinstance(driver, DRIVERS[site.devices[name].driver])
        assert driver.name == name
    modbus = [d for d in site.devices.values() if d.transport == "tcp"]
    assert len(pool.buses) == len({(d.host, d.port) for d in modbus})


def test_an_ocpp_station_needs_the_central_system(pool: BusPool) -> None:
    site = load_site(SITE)
    with pytest.raises(ValueError, match=r"devices\.ocpp_1: an OCPP station needs"):
        build_driver("ocpp_1", site.devices["ocpp_1"], pool)


async def test_built_driver_reads_over_its_bus(pool: BusPool) -> None:
    unit = FakeUnit(unit_id=3)
    banks.charger(unit)
    async with fake_server(unit) as port:
        device = Device(
            driver="bidirectional_charger",
            port=port,
            unit_id=3,
            rating_w=11_000.0,
            timeout_s=1.0,
        )
        charger = build_driver("charger_1", device, pool)
        assert isinstance(charger, BidirectionalChargerDriver)
        assert (await charger.read()).soc_pct == 80.5
        await pool.close_all()


def test_driver_for_any_transport(pool: BusPool) -> None:
    bus = pool.get("127.0.0.1", 1, 1.0)
    panel = driver_for("panel", Device(driver="load_panel", port=1, channels=4), bus)
    assert isinstance(panel, LoadPanel)
    assert panel.channels == 4
