"""Register maps of every device family, shared by the drivers and `firmware_sim`.

One map, two users: the drivers read and write these addresses, and the simulated
firmware serves them, so the two sides cannot drift apart. `docs/registers.md`
documents the same tables for people.

All addresses are zero-based PDU addresses of holding registers (function codes
3, 6 and 16). Values are unsigned 16-bit unless marked signed (two's complement).
Scales are given as the factor a raw value is multiplied by to get the unit,
for example `X10` means raw = value * 10.

The grid meter and the PV inverter follow SunSpec (common model 1, meter model
203, inverter model 103, nameplate 120, immediate controls 123), with the
SunSpec base address 40000. The PCC breaker, load panel, bidirectional charger
and V2L outlet adapter have maps of our own, laid out so that one read of a
contiguous block returns everything a control cycle needs.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------- SunSpec
SUNSPEC_BASE: Final = 40000
SUNSPEC_MARKER: Final = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_END_ID: Final = 0xFFFF
SUNSPEC_NOT_IMPLEMENTED_INT16: Final = 0x8000
COMMON_MODEL_ID: Final = 1
COMMON_MODEL_LEN: Final = 66
# model id 1, then length 66, then Mn(16) Md(16) Opt(8) Vr(8) SN(16) DA Pad
COMMON_ID_ADDR: Final = 40002
COMMON_MN_ADDR: Final = 40004  # manufacturer, 16 registers of ASCII
COMMON_MD_ADDR: Final = 40020  # model, 16 registers
COMMON_SN_ADDR: Final = 40052  # serial number, 16 registers

FIRST_MODEL_ADDR: Final = COMMON_ID_ADDR + 2 + COMMON_MODEL_LEN  # 40070


class SunSpecMeter:
    """Three-phase wye meter, SunSpec model 203, after the common model."""

    MODEL_ID: Final = 203
    MODEL_LEN: Final = 105
    ID_ADDR: Final = FIRST_MODEL_ADDR  # 40070
    DATA: Final = ID_ADDR + 2  # 40072, first data point
    # offsets from DATA
    A: Final = 0  # int16 total current, scale A_SF
    A_SF: Final = 4
    PHV: Final = 5  # int16 average line-to-neutral voltage, scale V_SF
    PHV_A: Final = 6
    PHV_B: Final = 7
    PHV_C: Final = 8
    PPV: Final = 9  # line-to-line average
    V_SF: Final = 13
    HZ: Final = 14  # int16, scale HZ_SF
    HZ_SF: Final = 15
    W: Final = 16  # int16 total real power, + import, scale W_SF
    W_SF: Final = 20
    END_ADDR: Final = DATA + MODEL_LEN  # 40177, end marker 0xFFFF, 0
    READ_COUNT: Final = 21  # DATA .. DATA+20 holds every point the driver needs


class SunSpecInverter:
    """PV inverter: SunSpec models 103 (three-phase), 120 (nameplate), 123 (controls)."""

    MODEL_ID: Final = 103
    MODEL_LEN: Final = 50
    ID_ADDR: Final = FIRST_MODEL_ADDR  # 40070
    DATA: Final = ID_ADDR + 2  # 40072
    # offsets from DATA (model 103)
    PHV_A: Final = 8
    V_SF: Final = 11
    W: Final = 12  # int16 AC power, scale W_SF
    W_SF: Final = 13
    HZ: Final = 14
    HZ_SF: Final = 15
    ST: Final = 36  # operating state, see ST_* below
    READ_COUNT: Final = 37

    ST_OFF: Final = 1
    ST_SLEEPING: Final = 2
    ST_STARTING: Final = 3
    ST_MPPT: Final = 4
    ST_THROTTLED: Final = 5
    ST_SHUTTING_DOWN: Final = 6
    ST_FAULT: Final = 7
    ST_STANDBY: Final = 8

    NAMEPLATE_ID: Final = 120
    NAMEPLATE_LEN: Final = 26
    NAMEPLATE_ID_ADDR: Final = DATA + MODEL_LEN  # 40122
    NAMEPLATE_DATA: Final = NAMEPLATE_ID_ADDR + 2  # 40124
    DERTYP: Final = 0  # 4 = PV
    WRTG: Final = 1  # continuous power rating, scale WRTG_SF
    WRTG_SF: Final = 2

    CONTROLS_ID: Final = 123
    CONTROLS_LEN: Final = 24
    CONTROLS_ID_ADDR: Final = NAMEPLATE_DATA + NAMEPLATE_LEN  # 40150
    CONTROLS_DATA: Final = CONTROLS_ID_ADDR + 2  # 40152
    CONN: Final = 2  # 0 disconnect, 1 connect
    WMAXLIMPCT: Final = 3  # active power limit, % of WRtg, scale WMAXLIMPCT_SF
    WMAXLIM_ENA: Final = 7  # 0 disabled, 1 enabled
    WMAXLIMPCT_SF: Final = 21
    END_ADDR: Final = CONTROLS_DATA + CONTROLS_LEN  # 40176


# --------------------------------------------------------------------------- PCC breaker
class PccBreaker:
    """Point-of-common-coupling breaker with position feedback and a sync-check relay."""

    POSITION: Final = 0  # ro, BreakerPosition: 0 open, 1 closed, 2 travelling, 3 fault
    STATUS: Final = 1  # ro, bit 0: failed to operate on last command
    OPERATIONS: Final = 2  # ro, operation counter (wraps at 65536)
    BUS_VOLTAGE: Final = 3  # ro, site-bus line-to-line voltage, V x10
    BUS_FREQUENCY: Final = 4  # ro, site-bus frequency, Hz x100
    GRID_VOLTAGE: Final = 5  # ro, grid-side line-to-line voltage, V x10
    GRID_FREQUENCY: Final = 6  # ro, grid-side frequency, Hz x100
    PHASE_DIFF: Final = 7  # ro, signed, grid angle minus bus angle, degrees x10
    COMMAND: Final = 8  # rw, BreakerCommand: write 1 open, 2 close; reads last command
    READ_COUNT: Final = 9

    STATUS_FAIL_TO_OPERATE: Final = 0x0001


# --------------------------------------------------------------------------- load panel
class LoadPanel:
    """Relay panel with per-channel metering: one relay and one power reading per load."""

    CHANNELS: Final = 16
    RELAY_COMMAND: Final = 0  # rw, 16 registers, 0 off / 1 on
    RELAY_FEEDBACK: Final = 16  # ro, 16 registers, 0 open / 1 closed
    CHANNEL_POWER: Final = 32  # ro, 16 registers, W
    SUPPLY_VOLTAGE: Final = 48  # ro, voltage at the panel's supply, V x10 (0 = dead)
    OPERATIONS: Final = 49  # ro, relay operations since power-on (wraps at 65536)
    READ_COUNT: Final = 50


# --------------------------------------------------------------------------- bidirectional charger
class BidirectionalCharger:
    """DC V2G/V2H charger; power is signed, + discharges the vehicle into the site bus."""

    STATE: Final = 0  # ro, ChargerState
    MODE_ACTIVE: Final = 1  # ro, ChargerMode the unit is running in
    SOC: Final = 2  # ro, vehicle state of charge, % x10
    POWER: Final = 3  # ro, signed W, + discharge into the bus
    CAPACITY: Final = 4  # ro, vehicle usable capacity, Wh / 10
    MAX_DISCHARGE: Final = 5  # ro, W, min(charger rating, vehicle limit)
    MAX_CHARGE: Final = 6  # ro, W
    CAPABILITIES: Final = 7  # ro, bit 0: can form the grid; bit 1: PCC interlock wired
    AC_VOLTAGE: Final = 8  # ro, AC-side line-to-line voltage, V x10
    AC_FREQUENCY: Final = 9  # ro, Hz x100
    FAULT_CODE: Final = 10  # ro, 0 none, see FAULT_*
    MODE_COMMAND: Final = 11  # rw, ChargerMode
    POWER_SETPOINT: Final = 12  # rw, signed W (follow mode), + discharge
    FREQUENCY_SETPOINT: Final = 13  # rw, Hz x100 (form mode)
    VOLTAGE_SETPOINT: Final = 14  # rw, V x10 (form mode)
    MIN_SOC: Final = 15  # rw, % x10: the unit refuses to discharge below it (owner's reserve)
    READ_COUNT: Final = 16

    CAP_CAN_FORM: Final = 0x0001
    # The unit's grid-parallel input is wired to the PCC breaker's auxiliary contact: while
    # the PCC is closed it never forms (a FORM command runs as FOLLOW), so a grid that fails
    # right after a reconnection meets no voltage source of ours.
    CAP_PCC_INTERLOCK: Final = 0x0002
    FAULT_NONE: Final = 0
    FAULT_INTERNAL: Final = 1
    FAULT_OVERLOAD: Final = 2
    FAULT_ANTI_ISLANDING: Final = 3  # follower lost its voltage reference
    FAULT_UNPLUGGED_WHILE_ACTIVE: Final = 4


# --------------------------------------------------------------------------- V2L outlet
class V2LOutlet:
    """Adapter on a vehicle's V2L socket: metering plus a contactor feeding one small circuit."""

    STATE: Final = 0  # ro, V2LState: 0 unplugged, 1 off, 2 supplying, 3 tripped
    SOC: Final = 1  # ro, % x10
    POWER: Final = 2  # ro, W delivered
    RATING: Final = 3  # ro, W, the outlet's continuous rating
    VOLTAGE: Final = 4  # ro, V x10
    VEHICLE_CUTOFF_SOC: Final = 5  # ro, % x10, the vehicle's own V2L cut-off
    CAPACITY: Final = 6  # ro, vehicle usable capacity, Wh / 10
    ENABLE: Final = 7  # rw, 0 contactor open, 1 closed
    READ_COUNT: Final = 8


def to_signed16(raw: int) -> int:
    """Two's complement of a 16-bit register."""
    return raw - 0x10000 if raw & 0x8000 else raw


def from_signed16(value: int) -> int:
    """A signed integer in -32768..32767 as a 16-bit register."""
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(f"{value} does not fit a signed 16-bit register")
    return value & 0xFFFF


def encode_ascii(text: str, registers: int) -> list[int]:
    """SunSpec string: two ASCII bytes per register, NUL padded."""
    raw = text.encode("ascii")[: registers * 2].ljust(registers * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]
