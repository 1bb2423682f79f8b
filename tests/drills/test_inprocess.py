"""firmware_sim.inprocess: the drivers read the same values in process as over Modbus TCP,
and device faults surface as the same transport errors."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from firmware_sim.devices import build_devices
from firmware_sim.inprocess import InProcessTransport, build_inprocess_drivers, transports_for
from firmware_sim.plant import Plant
from firmware_sim.server import SimSite
from resilience.config import cross_check, load_site
from resilience.devices import BidirectionalCharger, ChargerCommand
from resilience.drivers.registry import build_driver, driver_for
from resilience.model import ChargerMode, ChargerState
from resilience.service import quiet_pymodbus
from resilience.transport.errors import BadReply, DeviceExceptionResponse, DeviceTimeout
from resilience.transport.modbus import BusPool
from tests.serial_lines import mixed_site
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"

pytestmark = pytest.mark.integration


async def test_same_readings_in_process_and_over_tcp() -> None:
    quiet_pymodbus()
    config = modbus_only(load_site(SITE))
    async with SimSite(config, bind_free_ports=True, tick_s=None) as site:
        site.plant.grid_loss()
        site.plant.set_pv_available(7000.0)
        tcp_config = site.controller_config()
        pool = BusPool()
        try:
            over_tcp = {
                name: build_driver(name, device, pool)
                for name, device in tcp_config.devices.items()
            }
            devices = build_devices(site.plant)
            transports = transports_for(config, devices)
            in_process = {
                name: driver_for(name, device, transports[name])
                for name, device in config.devices.items()
            }
            for name in config.devices:
                assert await in_process[name].read() == await over_tcp[name].read(), name
            # a write through one is seen through the other
            command = ChargerCommand(ChargerMode.FOLLOW, power_setpoint_w=-1500.0, min_soc_pct=30.5)
            await in_process["charger_3"].command(command)
            reading = await over_tcp["charger_3"].read()
            assert reading.mode is ChargerMode.FOLLOW
        finally:
            await pool.close_all()


async def test_faults_become_transport_errors() -> None:
    config = modbus_only(load_site(SITE))
    site = SimSite(config, tick_s=None)
    plant = site.plant
    drivers = build_inprocess_drivers(plant)
    plant.silence("charger_1")
    with pytest.raises(DeviceTimeout, match=r"15031"):
        await drivers["charger_1"].read()
    plant.exception("grid_meter", 4)
    with pytest.raises(DeviceExceptionResponse) as caught:
        await drivers["grid_meter"].read()
    assert caught.value.code == 4
    plant.garbage("pcc_breaker")
    with pytest.raises(BadReply):
        await drivers["pcc_breaker"].read()
    for device in ("charger_1", "grid_meter", "pcc_breaker"):
        plant.clear_fault(device)
        await drivers[device].read()


async def test_requests_that_can_never_be_valid() -> None:
    config = modbus_only(load_site(SITE))
    devices = build_devices(SimSite(config, tick_s=None).plant)
    transport = InProcessTransport({1: devices["pcc_breaker"]}, "test")
    with pytest.raises(ValueError, match="registers in one request"):
        await transport.read(1, 0, 200)
    with pytest.raises(ValueError, match="16-bit"):
        await transport.write(1, 0, [70000])
    with pytest.raises(DeviceTimeout):
        await transport.read(9, 0, 1)  # nobody behind that unit id
    with pytest.raises(DeviceExceptionResponse) as caught:
        await transport.read(1, 9000, 1)
    assert caught.value.name == "ILLEGAL_ADDRESS"


async def test_serial_lines_are_separate_endpoints_in_process() -> None:
    """Unit id 1 on /dev/ttyUSB0 and unit id 1 on /dev/ttyUSB1 are two devices (a valid
    site: unit ids are unique per line); in process each driver must read its own."""
    reference = modbus_only(load_site(SITE))
    config = mixed_site(mixed_site(reference, "/dev/ttyUSB0", ["charger_3"]), "/dev/ttyUSB1",
                        ["charger_4"])  # fmt: skip
    assert cross_check(config) == []
    plant = Plant(config)
    drivers = build_inprocess_drivers(plant)
    charger_3 = cast(BidirectionalCharger, drivers["charger_3"])
    charger_4 = cast(BidirectionalCharger, drivers["charger_4"])
    plant.unplug("charger_3")
    assert (await charger_3.read()).state is ChargerState.UNPLUGGED
    assert (await charger_4.read()).state is not ChargerState.UNPLUGGED
