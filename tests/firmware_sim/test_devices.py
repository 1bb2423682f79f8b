"""Register banks in-process: the maps of resilience.drivers.registers, rendered from the plant."""

from __future__ import annotations

import pytest
from pymodbus.constants import ExcCodes

from firmware_sim.devices import SimulatedDevice, build_devices, s16, u16
from firmware_sim.plant import Plant
from resilience.drivers.registers import (
    COMMON_ID_ADDR,
    COMMON_SN_ADDR,
    SUNSPEC_BASE,
    SUNSPEC_END_ID,
    SUNSPEC_MARKER,
    BidirectionalCharger,
    LoadPanel,
    PccBreaker,
    SunSpecInverter,
    SunSpecMeter,
    V2LOutlet,
    to_signed16,
)
from resilience.model import BreakerPosition, ChargerMode, ChargerState, V2LState


@pytest.fixture
def devices(plant: Plant) -> dict[str, SimulatedDevice]:
    return build_devices(plant)


def regs(device: SimulatedDevice, address: int, count: int) -> list[int]:
    result = device.read(address, count)
    assert not isinstance(result, ExcCodes), result
    return result


def one(device: SimulatedDevice, address: int) -> int:
    return regs(device, address, 1)[0]


def sunssf(raw: int) -> int:
    return to_signed16(raw)


def test_every_device_of_the_site_has_a_bank(devices: dict[str, SimulatedDevice]) -> None:
    assert set(devices) == {
        "grid_meter", "pcc_breaker", "panel_main", "panel_v2l", "charger_1", "charger_2",
        "charger_3", "charger_4", "v2l_1", "v2l_2", "pv",
    }  # fmt: skip


@pytest.mark.parametrize("device_id", ["grid_meter", "pv"])
def test_sunspec_devices_have_marker_common_model_and_end(
    devices: dict[str, SimulatedDevice], device_id: str
) -> None:
    dev = devices[device_id]
    assert tuple(regs(dev, SUNSPEC_BASE, 2)) == SUNSPEC_MARKER
    assert regs(dev, COMMON_ID_ADDR, 2) == [1, 66]
    serial = bytes(b for r in regs(dev, COMMON_SN_ADDR, 16) for b in (r >> 8, r & 0xFF))
    assert serial.rstrip(b"\0").decode() == device_id
    end = SunSpecMeter.END_ADDR if device_id == "grid_meter" else SunSpecInverter.END_ADDR
    assert regs(dev, end, 2) == [SUNSPEC_END_ID, 0]


def test_meter_values_with_their_scale_factors(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    m = SunSpecMeter
    data = regs(devices["grid_meter"], m.DATA, m.READ_COUNT)
    assert regs(devices["grid_meter"], m.ID_ADDR, 2) == [203, 105]
    v = to_signed16(data[m.PPV]) * 10.0 ** sunssf(data[m.V_SF])
    hz = to_signed16(data[m.HZ]) * 10.0 ** sunssf(data[m.HZ_SF])
    watts = to_signed16(data[m.W]) * 10.0 ** sunssf(data[m.W_SF])
    assert v == pytest.approx(400.0)
    assert hz == pytest.approx(50.0)
    assert watts == pytest.approx(plant.meter_power_w, abs=10)
    assert watts > 32767  # why W_SF is 1 for a 100 kVA connection


def test_meter_reads_zero_when_the_grid_is_lost(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    plant.grid_loss()
    data = regs(devices["grid_meter"], SunSpecMeter.DATA, SunSpecMeter.READ_COUNT)
    assert data[SunSpecMeter.PPV] == 0
    assert data[SunSpecMeter.HZ] == 0
    assert data[SunSpecMeter.W] == 0


def test_meter_export_is_negative(plant: Plant, devices: dict[str, SimulatedDevice]) -> None:
    plant.set_pv_available(20000)
    for load_id in ("hvac", "hot_water", "lift", "ev_charging_non_donor", "kitchen"):
        spec = plant.loads[load_id].spec
        plant.set_relay(spec.panel, spec.channel, False)
    raw = one(devices["grid_meter"], SunSpecMeter.DATA + SunSpecMeter.W)
    assert to_signed16(raw) < 0


def test_reads_outside_the_map_are_illegal_address(devices: dict[str, SimulatedDevice]) -> None:
    assert devices["charger_1"].read(BidirectionalCharger.READ_COUNT, 1) == ExcCodes.ILLEGAL_ADDRESS
    assert devices["charger_1"].read(10, 10) == ExcCodes.ILLEGAL_ADDRESS
    assert devices["grid_meter"].read(0, 2) == ExcCodes.ILLEGAL_ADDRESS
    assert devices["grid_meter"].read(SunSpecMeter.END_ADDR + 2, 1) == ExcCodes.ILLEGAL_ADDRESS


def test_writes_to_read_only_registers_are_illegal_address(
    devices: dict[str, SimulatedDevice],
) -> None:
    assert devices["charger_1"].write(BidirectionalCharger.SOC, [500]) == ExcCodes.ILLEGAL_ADDRESS
    assert devices["pcc_breaker"].write(PccBreaker.POSITION, [0]) == ExcCodes.ILLEGAL_ADDRESS
    assert devices["grid_meter"].write(SunSpecMeter.DATA, [1]) == ExcCodes.ILLEGAL_ADDRESS
    feedback = LoadPanel.RELAY_FEEDBACK
    assert devices["panel_main"].write(feedback, [0]) == ExcCodes.ILLEGAL_ADDRESS


def test_out_of_range_values_are_illegal_value(devices: dict[str, SimulatedDevice]) -> None:
    m = BidirectionalCharger
    assert devices["charger_1"].write(m.MODE_COMMAND, [7]) == ExcCodes.ILLEGAL_VALUE
    assert devices["charger_1"].write(m.MIN_SOC, [1001]) == ExcCodes.ILLEGAL_VALUE
    assert devices["charger_1"].write(m.FREQUENCY_SETPOINT, [7000]) == ExcCodes.ILLEGAL_VALUE
    assert devices["pcc_breaker"].write(PccBreaker.COMMAND, [3]) == ExcCodes.ILLEGAL_VALUE
    assert devices["panel_main"].write(LoadPanel.RELAY_COMMAND, [2]) == ExcCodes.ILLEGAL_VALUE
    assert devices["v2l_1"].write(V2LOutlet.ENABLE, [5]) == ExcCodes.ILLEGAL_VALUE


def test_form_on_a_charger_that_cannot_form_is_illegal_value(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    form = [int(ChargerMode.FORM)]
    assert devices["charger_3"].write(BidirectionalCharger.MODE_COMMAND, form) == (
        ExcCodes.ILLEGAL_VALUE
    )
    assert plant.chargers["charger_3"].mode_command == ChargerMode.OFF
    assert devices["charger_1"].write(BidirectionalCharger.MODE_COMMAND, form) is None


def test_a_multi_register_write_is_all_or_nothing(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    m = BidirectionalCharger
    bad = [int(ChargerMode.FOLLOW), 3000, 5000, 4000, 2000]  # MIN_SOC 200 % is out of range
    assert devices["charger_3"].write(m.MODE_COMMAND, bad) == ExcCodes.ILLEGAL_VALUE
    assert plant.chargers["charger_3"].power_setpoint_w == 0
    good = [int(ChargerMode.FOLLOW), 3000, 5000, 4000, 300]
    assert devices["charger_3"].write(m.MODE_COMMAND, good) is None
    assert plant.charger_power_w("charger_3") == 3000
    assert plant.chargers["charger_3"].min_soc_pct == 30.0


def test_charger_power_is_signed(plant: Plant, devices: dict[str, SimulatedDevice]) -> None:
    m = BidirectionalCharger
    dev = devices["charger_4"]
    assert dev.write(m.POWER_SETPOINT, [(-7000) & 0xFFFF]) is None
    assert dev.write(m.MODE_COMMAND, [int(ChargerMode.FOLLOW)]) is None
    block = regs(dev, 0, m.READ_COUNT)
    assert to_signed16(block[m.POWER]) == -7000
    assert block[m.STATE] == ChargerState.CHARGING
    assert block[m.MODE_ACTIVE] == ChargerMode.FOLLOW
    assert block[m.SOC] == 800
    assert block[m.CAPACITY] == 7740
    assert block[m.CAPABILITIES] == 0
    assert block[m.AC_FREQUENCY] == 5000


def test_charger_capabilities_and_the_pcc_interlock(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    m = BidirectionalCharger
    block = regs(devices["charger_1"], 0, m.READ_COUNT)
    assert block[m.CAPABILITIES] == m.CAP_CAN_FORM | m.CAP_PCC_INTERLOCK
    assert devices["charger_1"].write(m.MODE_COMMAND, [int(ChargerMode.FORM)]) is None
    block = regs(devices["charger_1"], 0, m.READ_COUNT)
    assert block[m.MODE_COMMAND] == ChargerMode.FORM
    assert block[m.MODE_ACTIVE] == ChargerMode.FOLLOW  # the PCC is closed: held off forming


def test_breaker_command_and_sync_check_registers(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    dev = devices["pcc_breaker"]
    assert dev.write(PccBreaker.COMMAND, [1]) is None
    assert one(dev, PccBreaker.POSITION) == BreakerPosition.TRAVELLING
    plant.step(0.05)
    block = regs(dev, 0, PccBreaker.READ_COUNT)
    assert block[PccBreaker.POSITION] == BreakerPosition.OPEN
    assert block[PccBreaker.OPERATIONS] == 1
    assert block[PccBreaker.COMMAND] == 1
    assert block[PccBreaker.BUS_VOLTAGE] == 0
    assert block[PccBreaker.GRID_VOLTAGE] == 4000
    assert block[PccBreaker.GRID_FREQUENCY] == 5000


def test_breaker_status_bit_on_failure_to_operate(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    plant.fail_to_operate(True)
    assert devices["pcc_breaker"].write(PccBreaker.COMMAND, [1]) is None
    assert one(devices["pcc_breaker"], PccBreaker.STATUS) & PccBreaker.STATUS_FAIL_TO_OPERATE


def test_panel_relay_write_switches_the_load(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    dev = devices["panel_main"]
    channel = plant.loads["hvac"].spec.channel
    assert one(dev, LoadPanel.CHANNEL_POWER + channel) == 12000
    assert dev.write(LoadPanel.RELAY_COMMAND + channel, [0]) is None
    assert not plant.load_on("hvac")
    assert one(dev, LoadPanel.RELAY_FEEDBACK + channel) == 0
    assert one(dev, LoadPanel.CHANNEL_POWER + channel) == 0
    assert one(dev, LoadPanel.OPERATIONS) == 1
    assert one(dev, LoadPanel.SUPPLY_VOLTAGE) == 4000


def test_panel_channels_beyond_its_size_are_not_writable(
    devices: dict[str, SimulatedDevice],
) -> None:
    assert devices["panel_v2l"].write(LoadPanel.RELAY_COMMAND + 9, [1]) == ExcCodes.ILLEGAL_ADDRESS
    assert devices["panel_v2l"].write(LoadPanel.RELAY_COMMAND + 7, [1]) is None


def test_v2l_panel_shows_the_v2l_circuit_voltage(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    assert one(devices["panel_v2l"], LoadPanel.SUPPLY_VOLTAGE) == 0
    assert devices["v2l_1"].write(V2LOutlet.ENABLE, [1]) is None
    assert one(devices["panel_v2l"], LoadPanel.SUPPLY_VOLTAGE) == 2300
    block = regs(devices["v2l_1"], 0, V2LOutlet.READ_COUNT)
    assert block[V2LOutlet.STATE] == V2LState.SUPPLYING
    assert block[V2LOutlet.POWER] == 2800
    assert block[V2LOutlet.RATING] == 3600
    assert block[V2LOutlet.VEHICLE_CUTOFF_SOC] == 100


def test_inverter_power_limit_through_model_123(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    m = SunSpecInverter
    dev = devices["pv"]
    assert regs(dev, m.NAMEPLATE_DATA, 3) == [4, 20000, 0]
    sf = sunssf(one(dev, m.CONTROLS_DATA + m.WMAXLIMPCT_SF))
    assert dev.write(m.CONTROLS_DATA + m.WMAXLIMPCT, [round(30 / 10.0**sf)]) is None
    assert dev.write(m.CONTROLS_DATA + m.WMAXLIM_ENA, [1]) is None
    assert plant.pv_power_w == pytest.approx(6000)
    data = regs(dev, m.DATA, m.READ_COUNT)
    assert data[m.W] == 6000
    assert data[m.ST] == m.ST_THROTTLED
    assert dev.write(m.CONTROLS_DATA + m.WMAXLIMPCT, [101]) == ExcCodes.ILLEGAL_VALUE


def test_garbage_injection_returns_impossible_values(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    plant.garbage("charger_1")
    block = regs(devices["charger_1"], 0, BidirectionalCharger.READ_COUNT)
    assert block[BidirectionalCharger.SOC] == 2500  # 250 %
    assert block[BidirectionalCharger.AC_FREQUENCY] == 0
    plant.clear_fault("charger_1")
    assert one(devices["charger_1"], BidirectionalCharger.SOC) == 800


def test_garbage_injection_with_named_registers_overrides_exactly_those(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    dev = devices["charger_1"]
    clean = regs(dev, 0, BidirectionalCharger.READ_COUNT)
    plant.garbage("charger_1", {BidirectionalCharger.SOC: 2500})
    block = regs(dev, 0, BidirectionalCharger.READ_COUNT)
    assert block[BidirectionalCharger.SOC] == 2500
    assert block[: BidirectionalCharger.SOC] == clean[: BidirectionalCharger.SOC]
    assert block[BidirectionalCharger.SOC + 1 :] == clean[BidirectionalCharger.SOC + 1 :]


def test_sunspec_reads_are_fresh_copies(plant: Plant, devices: dict[str, SimulatedDevice]) -> None:
    """The fixed part of a SunSpec map is built once; a read must never hand it out."""
    dev = devices["grid_meter"]
    first = regs(dev, SUNSPEC_BASE, dev.size)
    first[:] = [0] * dev.size
    plant.garbage("grid_meter")
    assert regs(dev, SUNSPEC_BASE, 2) == list(SUNSPEC_MARKER)
    plant.clear_fault("grid_meter")
    assert regs(dev, SunSpecMeter.DATA + SunSpecMeter.HZ, 1) == [5000]


@pytest.mark.parametrize(
    ("value", "unsigned", "signed"),
    [
        (0.0, 0, 0),
        (2.5, 2, 2),  # round half to even, as round() does
        (3.5, 4, 4),
        (-0.4, 0, 0),
        (-1.0, 0, 0xFFFF),
        (-32768.4, 0, 0x8000),
        (-40000.0, 0, 0x8000),  # saturates, never wraps
        (32767.4, 32767, 0x7FFF),
        (40000.0, 40000, 0x7FFF),
        (65535.4, 0xFFFF, 0x7FFF),
        (70000.0, 0xFFFF, 0x7FFF),
    ],
)
def test_register_encoding_rounds_and_saturates(value: float, unsigned: int, signed: int) -> None:
    assert u16(value) == unsigned
    assert s16(value) == signed


def test_exception_injection_answers_everything_with_the_code(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    plant.exception("pcc_breaker", 6)
    assert devices["pcc_breaker"].read(0, 9) == ExcCodes.DEVICE_BUSY
    assert devices["pcc_breaker"].write(PccBreaker.COMMAND, [1]) == ExcCodes.DEVICE_BUSY
    assert plant.breaker_position == BreakerPosition.CLOSED


def test_silence_is_a_flag_for_the_transport(
    plant: Plant, devices: dict[str, SimulatedDevice]
) -> None:
    plant.silence("v2l_2")
    assert devices["v2l_2"].silent
    plant.clear_fault("v2l_2")
    assert not devices["v2l_2"].silent
