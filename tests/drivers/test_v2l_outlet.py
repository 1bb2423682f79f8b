"""V2LOutletDriver: a vehicle's V2L socket adapter."""

from __future__ import annotations

import pytest

from resilience.config import Device
from resilience.devices import OutletReading
from resilience.drivers.v2l_outlet import V2LOutletDriver
from resilience.model import V2LState
from resilience.transport.errors import BadReply
from resilience.transport.modbus import ModbusTcpBus
from tests.drivers import banks
from tests.drivers.banks import V2L
from tests.modbus_fakes import FakeUnit


def outlet(bus: ModbusTcpBus) -> V2LOutletDriver:
    return V2LOutletDriver(bus, 1, name="v2l_1", rating_w=3600.0)


async def test_decodes_one_block(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.outlet(unit)
    assert await outlet(bus).read() == OutletReading(
        state=V2LState.SUPPLYING,
        soc_pct=64.2,
        power_w=1850.0,
        rating_w=3600.0,
        voltage_v=230.4,
        vehicle_cutoff_soc_pct=20.0,
        capacity_wh=58_000.0,
        enabled=True,
    )
    assert [(r.address, r.count) for r in unit.requests] == [(0, V2L.READ_COUNT)]


async def test_unplugged_outlet_reads_empty(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    reading = await outlet(bus).read()  # all registers 0
    assert reading.state is V2LState.UNPLUGGED
    assert (reading.capacity_wh, reading.rating_w, reading.enabled) == (0.0, 0.0, False)


@pytest.mark.parametrize(
    ("address", "raw", "message"),
    [
        (V2L.STATE, 4, r"register STATE at 0: 4 is not a known V2LState"),
        (V2L.SOC, 2500, r"register SOC at 1: 250 %"),
        (V2L.POWER, 9000, r"register POWER at 2: 9000 W is outside 0..7200 W"),
        (V2L.CAPACITY, 0, r"register CAPACITY at 6: 0 Wh with a vehicle plugged"),
        (V2L.ENABLE, 5, r"register ENABLE at 7: 5 is neither 0 nor 1"),
        (V2L.VEHICLE_CUTOFF_SOC, 1200, r"register VEHICLE_CUTOFF_SOC at 5: 120 %"),
    ],
)
async def test_impossible_values_are_refused(
    unit: FakeUnit, bus: ModbusTcpBus, address: int, raw: int, message: str
) -> None:
    banks.outlet(unit)
    unit.load(address, [raw])
    with pytest.raises(BadReply, match=message):
        await outlet(bus).read()


async def test_enable_switches_the_contactor(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    await outlet(bus).enable(True)
    await outlet(bus).enable(False)
    assert [(r.function_code, r.address, r.values) for r in unit.requests] == [
        (6, V2L.ENABLE, (1,)),
        (6, V2L.ENABLE, (0,)),
    ]


def test_from_config() -> None:
    device = Device(driver="v2l_outlet", port=15041, rating_w=3600.0, unit_id=9)
    driver = V2LOutletDriver.from_config("v2l_1", device, ModbusTcpBus("h", 1, timeout_s=1))
    assert (driver.name, driver.unit_id, driver.rating_w) == ("v2l_1", 9, 3600.0)
