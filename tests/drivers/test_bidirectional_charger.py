"""BidirectionalChargerDriver: readings, and mode + setpoints in one write."""

from __future__ import annotations

import pytest

from resilience.config import Device
from resilience.devices import ChargerCommand, ChargerReading
from resilience.drivers.bidirectional_charger import BidirectionalChargerDriver
from resilience.drivers.registers import from_signed16
from resilience.model import ChargerMode, ChargerState
from resilience.transport.errors import BadReply
from resilience.transport.modbus import ModbusTcpBus
from tests.drivers import banks
from tests.drivers.banks import CHG
from tests.modbus_fakes import FakeUnit

RATING_W = 11_000.0


def charger(bus: ModbusTcpBus, *, can_form: bool = True) -> BidirectionalChargerDriver:
    return BidirectionalChargerDriver(
        bus, 1, name="charger_1", rating_w=RATING_W, can_form=can_form
    )


async def test_decodes_one_block(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.charger(unit)
    assert await charger(bus).read() == ChargerReading(
        state=ChargerState.CHARGING,
        mode=ChargerMode.FOLLOW,
        soc_pct=80.5,
        power_w=-7000.0,
        capacity_wh=77_000.0,
        max_discharge_w=11_000.0,
        max_charge_w=11_000.0,
        can_form=True,
        ac_voltage_v=400.0,
        ac_frequency_hz=50.0,
        fault_code=CHG.FAULT_NONE,
        min_soc_pct=30.0,
        held_setpoint_w=-7000.0,
        told_mode=ChargerMode.FOLLOW,
    )
    assert [(r.address, r.count) for r in unit.requests] == [(0, CHG.READ_COUNT)]


async def test_the_held_setpoint_is_what_the_unit_was_told(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    """A black start counts what a charger takes up again once the bus is live: the power
    setpoint it keeps while told FOLLOW (a dead bus clears neither register), none when OFF."""
    banks.charger(unit)
    unit.load(CHG.MODE_COMMAND, [int(ChargerMode.FOLLOW), from_signed16(-9000)])
    assert (await charger(bus).read()).held_setpoint_w == -9000.0
    unit.load(CHG.MODE_COMMAND, [int(ChargerMode.OFF)])
    assert (await charger(bus).read()).held_setpoint_w == 0.0
    unit.load(CHG.MODE_COMMAND, [7])
    with pytest.raises(BadReply, match="MODE_COMMAND"):
        await charger(bus).read()


async def test_capabilities_report_the_pcc_interlock(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.charger(unit)
    assert not (await charger(bus).read()).pcc_interlock
    unit.load(CHG.CAPABILITIES, [CHG.CAP_CAN_FORM | CHG.CAP_PCC_INTERLOCK])
    reading = await charger(bus).read()
    assert reading.can_form and reading.pcc_interlock


async def test_unplugged_charger_may_report_no_capacity(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    banks.charger(unit)
    unit.load(CHG.STATE, [0, 0, 0, 0, 0])  # unplugged, off, 0 %, 0 W, 0 Wh
    reading = await charger(bus).read()
    assert (reading.state, reading.capacity_wh, reading.power_w) == (
        ChargerState.UNPLUGGED,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("address", "raw", "message"),
    [
        (CHG.SOC, 2500, r"register SOC at 2: 250 % is outside 0..100 %"),
        (CHG.AC_FREQUENCY, 0, r"register AC_FREQUENCY at 9: 0 Hz at 400 V"),
        (CHG.STATE, 9, r"register STATE at 0: 9 is not a known ChargerState"),
        (CHG.MODE_ACTIVE, 3, r"register MODE_ACTIVE at 1: 3 is not a known ChargerMode"),
        (CHG.POWER, from_signed16(-30000), r"POWER at 3: -30000 W is outside -22000..22000 W"),
        (CHG.CAPACITY, 0, r"register CAPACITY at 4: 0 Wh with a vehicle plugged"),
        (CHG.FAULT_CODE, 42, r"register FAULT_CODE at 10: 42 is not a known fault"),
        (CHG.MIN_SOC, 1001, r"register MIN_SOC at 15: 100.1 %"),
    ],
)
async def test_impossible_values_are_refused(
    unit: FakeUnit, bus: ModbusTcpBus, address: int, raw: int, message: str
) -> None:
    banks.charger(unit)
    unit.load(address, [raw])
    with pytest.raises(BadReply, match=message) as caught:
        await charger(bus).read()
    assert str(caught.value).startswith("charger_1 (127.0.0.1:")
    assert caught.value.address == address


async def test_command_writes_five_registers_in_one_request(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    await charger(bus).command(
        ChargerCommand(mode=ChargerMode.FOLLOW, power_setpoint_w=-5000.0, min_soc_pct=30.0)
    )
    await charger(bus).command(
        ChargerCommand(
            mode=ChargerMode.FORM,
            frequency_setpoint_hz=50.1,
            voltage_setpoint_v=400.0,
            min_soc_pct=35.5,
        )
    )
    assert [(r.function_code, r.address, r.values) for r in unit.requests] == [
        (16, CHG.MODE_COMMAND, (1, from_signed16(-5000), 0, 0, 300)),
        (16, CHG.MODE_COMMAND, (2, 0, 5010, 4000, 355)),
    ]


@pytest.mark.parametrize("setpoint_w", [11_001.0, -11_001.0, float("nan"), float("inf")])
async def test_setpoint_beyond_the_rating_is_refused(
    unit: FakeUnit, bus: ModbusTcpBus, setpoint_w: float
) -> None:
    with pytest.raises(ValueError, match="beyond the charger's rating"):
        await charger(bus).command(ChargerCommand(ChargerMode.FOLLOW, setpoint_w))
    assert unit.requests == []


async def test_setpoint_at_the_rating_is_allowed(unit: FakeUnit, bus: ModbusTcpBus) -> None:
    await charger(bus).command(ChargerCommand(ChargerMode.FOLLOW, RATING_W))
    assert unit.registers(CHG.POWER_SETPOINT, 1) == [11000]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (ChargerCommand(ChargerMode.FORM, frequency_setpoint_hz=5.0), "frequency setpoint 5.0"),
        (ChargerCommand(ChargerMode.FORM, voltage_setpoint_v=1200.0), "voltage setpoint 1200"),
        (ChargerCommand(ChargerMode.OFF, min_soc_pct=101.0), "minimum SoC 101"),
    ],
)
async def test_impossible_setpoints_are_refused(
    unit: FakeUnit, bus: ModbusTcpBus, command: ChargerCommand, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await charger(bus).command(command)
    assert unit.requests == []


async def test_a_charger_not_configured_to_form_is_never_told_to(
    unit: FakeUnit, bus: ModbusTcpBus
) -> None:
    with pytest.raises(ValueError, match="not configured to form"):
        await charger(bus, can_form=False).command(ChargerCommand(ChargerMode.FORM))
    assert unit.requests == []


def test_a_rating_that_does_not_fit_the_register_is_refused_at_the_setpoint() -> None:
    big = BidirectionalChargerDriver(
        ModbusTcpBus("h", 1, timeout_s=1), 1, name="dc_fast", rating_w=50_000.0
    )
    with pytest.raises(ValueError, match="signed 16-bit"):
        big.encode(ChargerCommand(ChargerMode.FOLLOW, 40_000.0))


def test_from_config_needs_a_rating() -> None:
    transport = ModbusTcpBus("h", 1, timeout_s=1)
    device = Device(driver="bidirectional_charger", port=15031, rating_w=7400.0, can_form=True)
    driver = BidirectionalChargerDriver.from_config("charger_1", device, transport)
    assert (driver.rating_w, driver.can_form) == (7400.0, True)
    with pytest.raises(ValueError, match="needs rating_w"):
        BidirectionalChargerDriver.from_config(
            "charger_1", Device(driver="bidirectional_charger", port=15031), transport
        )
