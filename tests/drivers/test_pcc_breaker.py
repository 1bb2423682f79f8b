"""PccBreaker: position, sync-check measurements and commands."""

from __future__ import annotations

import pytest

from resilience.drivers.pcc_breaker import PccBreaker
from resilience.drivers.registers import from_signed16
from resilience.model import BreakerCommand, BreakerPosition, BreakerReading
from resilience.transport.errors import BadReply
from resilience.transport.modbus import ModbusTcpBus
from tests.drivers import banks
from tests.drivers.banks import BRK
from tests.modbus_fakes import FakeUnit


async def test_decodes_one_block(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.breaker(unit)
    reading = await PccBreaker(bus, 1, name="pcc_breaker").read()
    assert reading == BreakerReading(
        position=BreakerPosition.CLOSED,
        fail_to_operate=True,
        operations=1234,
        bus_voltage_v=400.0,
        bus_frequency_hz=50.0,
        grid_voltage_v=399.0,
        grid_frequency_hz=49.98,
        phase_diff_deg=-12.5,
    )
    assert [(r.address, r.count) for r in unit.requests] == [(0, PccBreaker.READ_COUNT)]


async def test_dead_bus_reads_zero_hertz(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.breaker(unit)
    unit.load(BRK.POSITION, [0, 0])
    unit.load(BRK.BUS_VOLTAGE, [0, 0])
    reading = await PccBreaker(bus, 1, name="pcc_breaker").read()
    assert (reading.position, reading.fail_to_operate) == (BreakerPosition.OPEN, False)
    assert (reading.bus_voltage_v, reading.bus_frequency_hz) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("address", "raw", "message"),
    [
        (BRK.POSITION, 7, r"register POSITION at 0: 7 is not a known BreakerPosition"),
        (BRK.GRID_FREQUENCY, 0, r"register GRID_FREQUENCY at 6: 0 Hz at 399 V"),
        (BRK.BUS_VOLTAGE, 12000, r"register BUS_VOLTAGE at 3: 1200 V is outside 0..1000 V"),
        (BRK.PHASE_DIFF, 1900, r"register PHASE_DIFF at 7: 190 deg is outside -180..180"),
        (BRK.PHASE_DIFF, from_signed16(-1801), r"PHASE_DIFF at 7: -180.1 deg"),
        (BRK.COMMAND, 3, r"register COMMAND at 8: 3 is not a known BreakerCommand"),
    ],
)
async def test_impossible_values_are_refused(
    unit: FakeUnit, bus: ModbusTcpBus, address: int, raw: int, message: str
) -> None:
    banks.breaker(unit)
    unit.load(address, [raw])
    with pytest.raises(BadReply, match=message) as caught:
        await PccBreaker(bus, 1, name="pcc_breaker").read()
    assert str(caught.value).startswith("pcc_breaker (127.0.0.1:")
    assert caught.value.address == address


async def test_command_writes_the_command_register(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    breaker = PccBreaker(bus, 1, name="pcc_breaker")
    await breaker.command(BreakerCommand.CLOSE)
    await breaker.command(BreakerCommand.OPEN)
    assert [(r.function_code, r.address, r.values) for r in unit.requests] == [
        (6, BRK.COMMAND, (2,)),
        (6, BRK.COMMAND, (1,)),
    ]


async def test_identical_reply_reuses_the_reading_and_a_change_decodes_anew(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    banks.breaker(unit)
    driver = PccBreaker(bus, 1, name="pcc_breaker")
    first = await driver.read()
    assert await driver.read() is first  # same registers: the same immutable reading
    unit.load(BRK.POSITION, [0])
    changed = await driver.read()
    assert changed.position is BreakerPosition.OPEN and changed is not first
    assert len(unit.requests) == 3  # every read still asks the device


async def test_a_bad_reply_is_refused_every_time_it_comes(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    banks.breaker(unit)
    driver = PccBreaker(bus, 1, name="pcc_breaker")
    good = await driver.read()
    unit.load(BRK.BUS_VOLTAGE, [12000])
    for _ in range(2):
        with pytest.raises(BadReply, match="BUS_VOLTAGE"):
            await driver.read()
    unit.load(BRK.BUS_VOLTAGE, [4000])
    assert await driver.read() == good
