"""SunSpecMeter: model 203 over Modbus TCP -> GridReading."""

from __future__ import annotations

import pytest

from resilience.config import Device
from resilience.drivers import sunspec_models as sm
from resilience.drivers.registers import from_signed16
from resilience.drivers.sunspec_meter import SunSpecMeter
from resilience.model import GridReading
from resilience.transport.errors import BadReply
from resilience.transport.modbus import ModbusTcpBus
from tests.drivers import banks
from tests.drivers.banks import M
from tests.modbus_fakes import FakeUnit

VERIFY = (3, 40000, 72)
DATA = (3, M.DATA, SunSpecMeter.READ_COUNT)


def reads(unit: FakeUnit) -> list[tuple[int, int, int]]:
    return [(r.function_code, r.address, r.count) for r in unit.requests]


async def test_decodes_line_to_line_voltage_frequency_and_signed_power(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    banks.meter(unit)
    meter = SunSpecMeter(bus, 1, name="grid_meter")
    assert await meter.read() == GridReading(voltage_v=400.0, frequency_hz=50.0, power_w=-12340.0)
    assert await meter.read() == GridReading(voltage_v=400.0, frequency_hz=50.0, power_w=-12340.0)
    # Identity checked once, then one read per cycle.
    assert reads(unit) == [VERIFY, DATA, DATA]


async def test_refuses_a_device_without_the_sunspec_marker(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    banks.meter(unit)
    unit.load(40000, [0, 0])
    meter = SunSpecMeter(bus, 1, name="grid_meter")
    with pytest.raises(BadReply, match="SunSpec marker") as caught:
        await meter.read()
    assert "grid_meter" in str(caught.value)
    assert "unit 1" in str(caught.value)
    assert caught.value.address == 40000
    assert reads(unit) == [VERIFY]


async def test_refuses_another_sunspec_model(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(40070, [201, 105])
    with pytest.raises(BadReply, match="model 201 length 105, expected model 203"):
        await SunSpecMeter(bus, 1, name="grid_meter").read()


async def test_verifies_again_after_an_error(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    meter = SunSpecMeter(bus, 1, name="grid_meter")
    await meter.read()
    unit.load(M.DATA + M.HZ, [0])
    with pytest.raises(BadReply):
        await meter.read()
    unit.load(M.DATA + M.HZ, [5000])
    await meter.read()
    assert reads(unit) == [VERIFY, DATA, DATA, VERIFY, DATA]


async def test_zero_hertz_with_400_volts_is_not_believed(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(M.DATA + M.HZ, [0])
    with pytest.raises(BadReply, match=r"register Hz at 40086: 0 Hz at 400 V") as caught:
        await SunSpecMeter(bus, 1, name="grid_meter").read()
    assert "40..70 Hz" in str(caught.value)


async def test_a_dead_grid_reads_zero(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(M.DATA + M.PPV, [0])
    unit.load(M.DATA + M.HZ, [0])
    unit.load(M.DATA + M.W, [0])
    reading = await SunSpecMeter(bus, 1, name="grid_meter").read()
    assert reading == GridReading(voltage_v=0.0, frequency_hz=0.0, power_w=0.0)


async def test_not_implemented_power_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(M.DATA + M.W, [0x8000])
    with pytest.raises(BadReply, match=r"register W at 40088: required point not implemented"):
        await SunSpecMeter(bus, 1, name="grid_meter").read()


async def test_voltage_beyond_1000_volts_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(M.DATA + M.V_SF, [0])  # 4000 V
    with pytest.raises(BadReply, match=r"PPV at 40081: 4000 V is outside 0..1000 V"):
        await SunSpecMeter(bus, 1, name="grid_meter").read()


async def test_power_beyond_twice_the_rating_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(M.DATA + M.W, [from_signed16(-3000)])  # -30 kW with a 10 kW rating
    meter = SunSpecMeter(bus, 1, name="grid_meter", rating_w=10_000.0)
    with pytest.raises(BadReply, match=r"-30000 W is outside -20000..20000 W"):
        await meter.read()


async def test_bad_scale_factor_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.meter(unit)
    unit.load(M.DATA + M.W_SF, [from_signed16(-20)])
    with pytest.raises(BadReply, match=r"W_SF.*scale factor -20"):
        await SunSpecMeter(bus, 1, name="grid_meter").read()


@pytest.mark.parametrize("name", ["PPV", "V_SF", "Hz", "Hz_SF", "W", "W_SF"])
async def test_a_needed_point_not_implemented_is_refused(
    unit: FakeUnit, bus: ModbusTcpBus, name: str
) -> None:
    """Each point the driver needs holds its own type's "not implemented" value (model 203's
    are int16 and sunssf: 0x8000): the read is refused, naming it."""
    banks.meter(unit)
    points = sm.METER_203_POINTS
    point = next(p for p in points if p.name == name)
    address = M.DATA + sm.offset_of(points, name)
    unit.load(address, list(sm.NOT_IMPLEMENTED[point.type]))
    with pytest.raises(BadReply, match=rf"register {name} at {address}:"):
        await SunSpecMeter(bus, 1, name="grid_meter").read()


def test_from_config() -> None:
    device = Device(driver="sunspec_meter", port=15020, unit_id=4, rating_w=100_000.0)
    meter = SunSpecMeter.from_config("grid_meter", device, ModbusTcpBus("h", 1, timeout_s=1))
    assert (meter.name, meter.unit_id, meter.rating_w) == ("grid_meter", 4, 100_000.0)
    assert meter.endpoint == "h:1 unit 4"
