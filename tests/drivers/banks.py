"""Realistic register banks for each device family, written with the shared register map."""

from __future__ import annotations

from resilience.drivers import registers as regs
from resilience.drivers.registers import encode_ascii, from_signed16
from tests.modbus_fakes import FakeUnit

M = regs.SunSpecMeter
INV = regs.SunSpecInverter
BRK = regs.PccBreaker
PNL = regs.LoadPanel
CHG = regs.BidirectionalCharger
V2L = regs.V2LOutlet


def sunspec_header(unit: FakeUnit, model_id: int, model_len: int) -> None:
    unit.load(regs.SUNSPEC_BASE, list(regs.SUNSPEC_MARKER))
    unit.load(regs.COMMON_ID_ADDR, [regs.COMMON_MODEL_ID, regs.COMMON_MODEL_LEN])
    unit.load(regs.COMMON_MN_ADDR, encode_ascii("Resilience Labs", 16))
    unit.load(regs.COMMON_MD_ADDR, encode_ascii("SIM-203", 16))
    unit.load(regs.COMMON_SN_ADDR, encode_ascii("0001", 16))
    unit.load(regs.FIRST_MODEL_ADDR, [model_id, model_len])


def meter(unit: FakeUnit) -> None:
    """400 V line-to-line (230.9 V to neutral), 50.00 Hz, exporting 12 340 W."""
    sunspec_header(unit, M.MODEL_ID, M.MODEL_LEN)
    d = M.DATA
    unit.load(d + M.A, [178])
    unit.load(d + M.A_SF, [from_signed16(-1)])
    unit.load(d + M.PHV, [2309, 2309, 2310, 2308, 4000, 4000, 4001, 3999])
    unit.load(d + M.V_SF, [from_signed16(-1)])
    unit.load(d + M.HZ, [5000, from_signed16(-2)])
    unit.load(d + M.W, [from_signed16(-1234), 0, 0, 0, 1])  # W, phases, W_SF = 1
    unit.load(M.END_ADDR, [regs.SUNSPEC_END_ID, 0])


def inverter(unit: FakeUnit) -> None:
    """20 kW PV: 15 kW at 50.01 Hz, 230.1 V phase A, MPPT, limited to 75.5 %."""
    sunspec_header(unit, INV.MODEL_ID, INV.MODEL_LEN)
    d = INV.DATA
    unit.load(d + INV.PHV_A, [2301, 2302, 2299, from_signed16(-1)])
    unit.load(d + INV.W, [15000, 0, 5001, from_signed16(-2)])
    unit.load(d + INV.ST, [INV.ST_MPPT])
    unit.load(INV.NAMEPLATE_ID_ADDR, [INV.NAMEPLATE_ID, INV.NAMEPLATE_LEN])
    unit.load(INV.NAMEPLATE_DATA, [4, 2000, 1])  # DERTyp PV, WRtg 2000 x 10^1 W
    unit.load(INV.CONTROLS_ID_ADDR, [INV.CONTROLS_ID, INV.CONTROLS_LEN])
    c = INV.CONTROLS_DATA
    unit.load(c + INV.CONN, [1])
    unit.load(c + INV.WMAXLIMPCT, [7550])
    unit.load(c + INV.WMAXLIM_ENA, [1])
    unit.load(c + INV.WMAXLIMPCT_SF, [from_signed16(-2)])
    unit.load(INV.END_ADDR, [regs.SUNSPEC_END_ID, 0])


def breaker(unit: FakeUnit) -> None:
    """Closed, failed its last command, island 400.0 V 50.00 Hz, grid 399.0 V 49.98 Hz, -12.5°."""
    unit.load(
        0, [1, BRK.STATUS_FAIL_TO_OPERATE, 1234, 4000, 5000, 3990, 4998, from_signed16(-125), 2]
    )


def panel(unit: FakeUnit) -> None:
    """16 channels: even channels on and closed, channel 5 commanded on but stuck open."""
    command = [1 if i % 2 == 0 or i == 5 else 0 for i in range(PNL.CHANNELS)]
    feedback = [1 if i % 2 == 0 else 0 for i in range(PNL.CHANNELS)]
    power = [100 * (i + 1) if feedback[i] else 0 for i in range(PNL.CHANNELS)]
    unit.load(PNL.RELAY_COMMAND, command)
    unit.load(PNL.RELAY_FEEDBACK, feedback)
    unit.load(PNL.CHANNEL_POWER, power)
    unit.load(PNL.SUPPLY_VOLTAGE, [2301, 77])


def charger(unit: FakeUnit) -> None:
    """Charging at 7 kW, 80.5 %, 77 kWh, can form, 400 V 50 Hz, reserve 30 %."""
    unit.load(
        0,
        [
            2,  # STATE charging
            1,  # MODE_ACTIVE follow
            805,  # SOC 80.5 %
            from_signed16(-7000),  # POWER, drawing 7 kW from the bus
            7700,  # CAPACITY 77 000 Wh
            11000,  # MAX_DISCHARGE
            11000,  # MAX_CHARGE
            CHG.CAP_CAN_FORM,
            4000,  # AC_VOLTAGE 400.0 V
            5000,  # AC_FREQUENCY 50.00 Hz
            CHG.FAULT_NONE,
            1,  # MODE_COMMAND
            from_signed16(-7000),  # POWER_SETPOINT
            0,
            0,
            300,  # MIN_SOC 30.0 %
        ],
    )


def outlet(unit: FakeUnit) -> None:
    """Supplying 1 850 W of a 3 600 W outlet at 230.4 V, 64.2 %, cut-off 20 %, 58 kWh."""
    unit.load(0, [2, 642, 1850, 3600, 2304, 200, 5800, 1])
