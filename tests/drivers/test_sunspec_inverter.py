"""SunSpecInverter: models 103/120/123 -> InverterReading, and the power limit."""

from __future__ import annotations

import pytest

from resilience.config import Device
from resilience.devices import InverterReading
from resilience.drivers import sunspec_models as sm
from resilience.drivers.registers import from_signed16
from resilience.drivers.sunspec_inverter import SunSpecInverter
from resilience.transport.errors import BadReply
from resilience.transport.modbus import ModbusTcpBus
from tests.drivers import banks
from tests.drivers.banks import INV
from tests.modbus_fakes import FakeUnit

PCT = INV.CONTROLS_DATA + INV.WMAXLIMPCT  # 40155
ENA = INV.CONTROLS_DATA + INV.WMAXLIM_ENA  # 40159


def pv(bus: ModbusTcpBus) -> SunSpecInverter:
    return SunSpecInverter(bus, 1, name="pv", rating_w=20_000.0)


async def test_decodes_one_block_of_three_models(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    inverter = pv(bus)
    expected = InverterReading(
        power_w=15000.0,
        rating_w=20000.0,
        frequency_hz=50.01,
        voltage_v=230.1,
        state=INV.ST_MPPT,
        limit_pct=75.5,
    )
    assert await inverter.read() == expected
    assert await inverter.read() == expected
    assert SunSpecInverter.READ_COUNT == 102
    assert [(r.address, r.count) for r in unit.requests] == [
        (40000, 72),
        (INV.DATA, 102),
        (INV.DATA, 102),
    ]


async def test_limit_disabled_reads_100_percent(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    unit.load(ENA, [0])
    unit.load(PCT, [0xFFFF])  # whatever sits there is not in force
    assert (await pv(bus).read()).limit_pct == 100.0


async def test_limit_writes_percent_then_enable(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    inverter = pv(bus)
    await inverter.limit(42.5)
    writes = [(r.function_code, r.address, r.values) for r in unit.requests if r.values]
    assert writes == [(6, PCT, (4250,)), (6, ENA, (1,))]
    assert (await inverter.read()).limit_pct == 42.5


async def test_limit_of_100_percent_lifts_the_limit(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    inverter = pv(bus)
    await inverter.read()
    await inverter.limit(100.0)
    assert unit.registers(PCT, 1) == [10000]
    assert unit.registers(ENA, 1) == [0]


@pytest.mark.parametrize("pct", [-1.0, 100.1, float("nan")])
async def test_impossible_limits_are_refused(unit: FakeUnit, bus: ModbusTcpBus, pct: float) -> None:
    banks.inverter(unit)
    with pytest.raises(ValueError, match=r"outside 0\.\.100"):
        await pv(bus).limit(pct)
    assert unit.requests == []


async def test_unknown_operating_state_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    unit.load(INV.DATA + INV.ST, [99])
    with pytest.raises(BadReply, match=r"register St at 40108: 99 is not a known"):
        await pv(bus).read()


async def test_missing_nameplate_model_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    unit.load(INV.NAMEPLATE_ID_ADDR, [0, 0])
    with pytest.raises(BadReply, match="nameplate model id at 40122"):
        await pv(bus).read()


async def test_power_beyond_twice_the_rating_is_refused(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.inverter(unit)
    unit.load(INV.DATA + INV.W_SF, [1])  # 150 kW from a 20 kW inverter
    with pytest.raises(BadReply, match=r"register W at 40084: 150000 W"):
        await pv(bus).read()


async def test_limit_above_100_percent_in_force_is_refused(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    banks.inverter(unit)
    unit.load(PCT, [from_signed16(20000)])
    with pytest.raises(BadReply, match="WMaxLimPct at 40155: 200 %"):
        await pv(bus).read()


NEEDED = [
    (INV.DATA, sm.INVERTER_103_POINTS, ("PhVphA", "V_SF", "W", "W_SF", "Hz", "Hz_SF", "St")),
    (INV.NAMEPLATE_DATA, sm.NAMEPLATE_120_POINTS, ("WRtg", "WRtg_SF")),
    (INV.CONTROLS_DATA, sm.CONTROLS_123_POINTS, ("WMaxLimPct", "WMaxLim_Ena", "WMaxLimPct_SF")),
]


@pytest.mark.parametrize(
    ("data", "points", "name"),
    [(data, points, name) for data, points, names in NEEDED for name in names],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_a_needed_point_not_implemented_is_refused(
    unit: FakeUnit, bus: ModbusTcpBus, data: int, points: tuple[sm.Point, ...], name: str
) -> None:
    """Each point the driver needs holds its own type's "not implemented" value (0x8000 for
    int16 and sunssf, 0xFFFF for uint16 and enum16): the read is refused, naming it."""
    banks.inverter(unit)
    point = next(p for p in points if p.name == name)
    address = data + sm.offset_of(points, name)
    unit.load(address, list(sm.NOT_IMPLEMENTED[point.type]))
    with pytest.raises(BadReply, match=rf"register {name} at {address}:"):
        await pv(bus).read()


def test_from_config() -> None:
    device = Device(driver="sunspec_inverter", port=15050, rating_w=20_000.0)
    inverter = SunSpecInverter.from_config("pv", device, ModbusTcpBus("h", 1, timeout_s=1))
    assert (inverter.name, inverter.unit_id, inverter.rating_w) == ("pv", 1, 20_000.0)
