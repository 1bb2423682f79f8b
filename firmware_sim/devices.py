"""The firmware of each simulated device: its register bank, rendered from the plant.

A device renders its whole map from the plant on every read and turns register
writes into plant commands, so a read always shows the physics of the last
plant step and a write acts at once. There is no Modbus framing here: the
servers (`server.py`) put these banks on TCP, and an in-process transport can
call `read`/`write` directly and skip the framing (for drills faster than real
time). Such a transport must check `silent` itself and treat it as a timeout.

Addresses and encodings come from `resilience.drivers.registers`, the one map
the drivers use too. Register units are those of that map (V x10, Hz x100,
W, % x10, Wh/10); the SunSpec devices use fixed scale factors chosen when the
device is built (see `docs/registers.md`).

Error answers follow Modbus: an address outside the map, or a write to a
read-only register, is ILLEGAL_ADDRESS; a value the register cannot take is
ILLEGAL_VALUE. Multi-register writes are all-or-nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from pymodbus.constants import ExcCodes

from firmware_sim.plant import CommFault, Plant
from resilience.drivers.registers import (
    COMMON_ID_ADDR,
    COMMON_MODEL_ID,
    COMMON_MODEL_LEN,
    SUNSPEC_BASE,
    SUNSPEC_END_ID,
    SUNSPEC_MARKER,
    BidirectionalCharger,
    LoadPanel,
    PccBreaker,
    SunSpecInverter,
    SunSpecMeter,
    V2LOutlet,
    encode_ascii,
    to_signed16,
)
from resilience.drivers.sunspec_models import (
    CONTROLS_123_POINTS,
    INVERTER_103_POINTS,
    METER_203_POINTS,
    NAMEPLATE_120_POINTS,
    not_implemented,
    offset_of,
)
from resilience.model import BreakerCommand, ChargerMode

ReadResult = list[int] | ExcCodes
Validator = Callable[[int], bool]

MANUFACTURER = "resilience firmware_sim"
FIRMWARE_VERSION = "0.1.0"

# Fixed SunSpec scale factors (powers of ten). W_SF is chosen per device so its
# largest power fits an int16; see docs/registers.md.
V_SF = -1
HZ_SF = -2
A_SF = -1
WMAXLIMPCT_SF = 0
ENERGY_SF = 0


def u16(value: float) -> int:
    """A physical value rounded into an unsigned register (saturating, never wrapping)."""
    raw = round(value)  # comparisons, not min/max: this runs ~70 times per control cycle
    if raw < 0:
        return 0
    return 0xFFFF if raw > 0xFFFF else raw


def s16(value: float) -> int:
    """A signed value rounded into a two's-complement register (saturating)."""
    raw = round(value)
    if raw < -0x8000:
        return 0x8000
    return 0x7FFF if raw > 0x7FFF else raw & 0xFFFF


def sf(value: int) -> int:
    """A SunSpec scale factor (sunssf, int16) as a register."""
    return value & 0xFFFF


def scaled(value: float, scale_factor: int) -> int:
    """A physical value as a SunSpec int16 with the given scale factor."""
    return s16(value / 10.0**scale_factor)


def fitting_sf(max_value: float) -> int:
    """Smallest non-negative power of ten that brings max_value into an int16."""
    power = 0
    while max_value / 10.0**power > 0x7FFF:
        power += 1
    return power


def acc32(value: float) -> list[int]:
    """A SunSpec acc32 accumulator, high word first."""
    raw = max(0, int(value)) & 0xFFFFFFFF
    return [raw >> 16, raw & 0xFFFF]


class SimulatedDevice(ABC):
    """One device's register bank over the plant."""

    driver: ClassVar[str]
    base_address: ClassVar[int] = 0
    size: ClassVar[int]

    def __init__(self, plant: Plant, device_id: str) -> None:
        self.plant = plant
        self.device_id = device_id
        self.config = plant.device(device_id)
        if self.config.driver != self.driver:
            raise ValueError(f"{device_id} is a {self.config.driver}, not a {self.driver}")

    @property
    def unit_id(self) -> int:
        return self.config.unit_id

    @property
    def silent(self) -> bool:
        """Silenced by a fault injection: a request must go unanswered."""
        fault = self.plant.comm_fault(self.device_id)
        return fault is not None and fault.kind == "silence"

    def _injected_exception(self) -> ExcCodes | None:
        """The exception a write is answered with, if one is injected."""
        fault = self.plant.comm_fault(self.device_id)
        if fault is not None and fault.kind in ("exception", "refuse_writes"):
            return ExcCodes(fault.code)
        return None

    def _in_map(self, address: int, count: int) -> bool:
        return (
            count >= 1
            and self.base_address <= address
            and (address + count <= self.base_address + self.size)
        )

    def read(self, address: int, count: int) -> ReadResult:
        """Registers address..address+count-1, or the exception the device answers with."""
        return self._read(self.plant.comm_fault(self.device_id), address, count)

    def answer(self, address: int, count: int) -> ReadResult | None:
        """`read`, or None when the device is silenced (it never answers): one look at the
        injected faults for both, as the in-process transport asks for every read."""
        fault = self.plant.comm_fault(self.device_id)
        if fault is not None and fault.kind == "silence":
            return None
        return self._read(fault, address, count)

    def _read(self, fault: CommFault | None, address: int, count: int) -> ReadResult:
        if fault is not None and fault.kind == "exception":
            return ExcCodes(fault.code)
        if not self._in_map(address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        registers = self.render()
        if fault is not None and fault.kind == "garbage":
            if fault.registers:
                for offset, raw in fault.registers:
                    registers[offset] = raw
            else:
                self.garble(registers)
        offset = address - self.base_address
        if offset == 0 and count == len(registers):
            return registers  # rendered for this reply only: the whole map, as asked
        return registers[offset : offset + count]

    def write(self, address: int, values: Sequence[int]) -> ExcCodes | None:
        """Write registers from address on; None when accepted, else the exception code."""
        if (code := self._injected_exception()) is not None:
            return code
        if not self._in_map(address, len(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        writable = self.writable()
        changes: dict[int, int] = {}
        for i, value in enumerate(values):
            offset = address - self.base_address + i
            check = writable.get(offset)
            if check is None:
                return ExcCodes.ILLEGAL_ADDRESS
            if not (0 <= value <= 0xFFFF and check(value)):
                return ExcCodes.ILLEGAL_VALUE
            changes[offset] = value
        try:
            self.apply(changes)
        except ValueError:
            return ExcCodes.ILLEGAL_VALUE
        return None

    @abstractmethod
    def render(self) -> list[int]:
        """The whole map, `size` registers, as the device would answer now."""

    def writable(self) -> dict[int, Validator]:
        """Offsets of read-write registers and the raw values each accepts."""
        return {}

    def apply(self, changes: dict[int, int]) -> None:
        """Turn accepted writes (offset -> raw) into plant commands."""
        raise ValueError(f"{self.device_id} has no writable registers")

    @abstractmethod
    def garble(self, registers: list[int]) -> None:
        """Overwrite registers with physically impossible values (garbage injection)."""


def _one_of(*allowed: int) -> Validator:
    return lambda raw: raw in allowed


def _any(_: int) -> bool:
    return True


# --------------------------------------------------------------------------- PCC breaker
class BreakerDevice(SimulatedDevice):
    driver = "pcc_breaker"
    size = PccBreaker.READ_COUNT

    def render(self) -> list[int]:
        plant, br = self.plant, self.plant.breaker
        regs = [0] * self.size
        regs[PccBreaker.POSITION] = int(br.position)
        regs[PccBreaker.STATUS] = PccBreaker.STATUS_FAIL_TO_OPERATE if br.failed_last_command else 0
        regs[PccBreaker.OPERATIONS] = br.operations & 0xFFFF
        regs[PccBreaker.BUS_VOLTAGE] = u16(plant.bus_voltage_v * 10)
        regs[PccBreaker.BUS_FREQUENCY] = u16(plant.bus_frequency_hz * 100)
        regs[PccBreaker.GRID_VOLTAGE] = u16(plant.grid.voltage_v * 10)
        regs[PccBreaker.GRID_FREQUENCY] = u16(plant.grid.measured_frequency_hz * 100)
        regs[PccBreaker.PHASE_DIFF] = s16(plant.phase_diff_deg * 10)
        regs[PccBreaker.COMMAND] = int(br.last_command)
        return regs

    def writable(self) -> dict[int, Validator]:
        return {PccBreaker.COMMAND: _one_of(*BreakerCommand)}

    def apply(self, changes: dict[int, int]) -> None:
        self.plant.command_breaker(BreakerCommand(changes[PccBreaker.COMMAND]))

    def garble(self, registers: list[int]) -> None:
        registers[PccBreaker.POSITION] = 9
        registers[PccBreaker.GRID_VOLTAGE] = 0xFFFF
        registers[PccBreaker.GRID_FREQUENCY] = 0
        registers[PccBreaker.BUS_FREQUENCY] = 0


# --------------------------------------------------------------------------- load panel
class PanelDevice(SimulatedDevice):
    driver = "load_panel"
    size = LoadPanel.READ_COUNT

    def __init__(self, plant: Plant, device_id: str) -> None:
        super().__init__(plant, device_id)
        # The plant's loads are fixed when it is built: find this panel's once, not per read.
        mine = [load for load in plant.loads.values() if load.spec.panel == device_id]
        self._metered = tuple((LoadPanel.CHANNEL_POWER + ld.spec.channel, ld) for ld in mine)
        self._circuit = self._supply()

    def _supply(self) -> str:
        """The circuit that feeds this panel: that of its lowest-channel load."""
        loads = sorted(
            (ld.spec for ld in self.plant.loads.values() if ld.spec.panel == self.device_id),
            key=lambda spec: spec.channel,
        )
        return loads[0].supply if loads else "bus"

    def render(self) -> list[int]:
        plant = self.plant
        panel = plant.panels[self.device_id]
        regs = [0] * self.size
        relays = list(map(int, panel.relays))  # commands read back as written, feedback follows
        channels = len(relays)  # at most LoadPanel.CHANNELS: the slices keep their length
        regs[LoadPanel.RELAY_COMMAND : LoadPanel.RELAY_COMMAND + channels] = relays
        regs[LoadPanel.RELAY_FEEDBACK : LoadPanel.RELAY_FEEDBACK + channels] = relays
        for offset, load in self._metered:
            regs[offset] = u16(load.power_w)
        regs[LoadPanel.SUPPLY_VOLTAGE] = u16(plant.circuit_voltage_v(self._circuit) * 10)
        regs[LoadPanel.OPERATIONS] = panel.operations & 0xFFFF
        return regs

    def writable(self) -> dict[int, Validator]:
        channels = self.plant.panels[self.device_id].channels
        return {LoadPanel.RELAY_COMMAND + ch: _one_of(0, 1) for ch in range(channels)}

    def apply(self, changes: dict[int, int]) -> None:
        for offset, raw in changes.items():
            self.plant.set_relay(self.device_id, offset - LoadPanel.RELAY_COMMAND, bool(raw))

    def garble(self, registers: list[int]) -> None:
        for ch in range(LoadPanel.CHANNELS):
            registers[LoadPanel.RELAY_FEEDBACK + ch] = 7
            registers[LoadPanel.CHANNEL_POWER + ch] = 0xFFFF
        registers[LoadPanel.SUPPLY_VOLTAGE] = 0xFFFF


# --------------------------------------------------------------------------- bidirectional charger
_CHARGER_ORDER = (
    BidirectionalCharger.STATE,
    BidirectionalCharger.MODE_ACTIVE,
    BidirectionalCharger.SOC,
    BidirectionalCharger.POWER,
    BidirectionalCharger.CAPACITY,
    BidirectionalCharger.MAX_DISCHARGE,
    BidirectionalCharger.MAX_CHARGE,
    BidirectionalCharger.CAPABILITIES,
    BidirectionalCharger.AC_VOLTAGE,
    BidirectionalCharger.AC_FREQUENCY,
    BidirectionalCharger.FAULT_CODE,
    BidirectionalCharger.MODE_COMMAND,
    BidirectionalCharger.POWER_SETPOINT,
    BidirectionalCharger.FREQUENCY_SETPOINT,
    BidirectionalCharger.VOLTAGE_SETPOINT,
    BidirectionalCharger.MIN_SOC,
)
"""The registers `ChargerDevice.render` lists, in its order: the map must be exactly these."""
if tuple(range(BidirectionalCharger.READ_COUNT)) != _CHARGER_ORDER:
    raise ImportError("ChargerDevice.render lists the charger's registers out of map order")
_CAN_FORM = BidirectionalCharger.CAP_CAN_FORM
_INTERLOCK = BidirectionalCharger.CAP_PCC_INTERLOCK


class ChargerDevice(SimulatedDevice):
    driver = "bidirectional_charger"
    size = BidirectionalCharger.READ_COUNT

    def render(self) -> list[int]:
        # One list in register order (`_CHARGER_ORDER`): this runs for every charger on
        # every read, the commonest read of a drill.
        plant = self.plant
        c = plant.chargers[self.device_id]
        vehicle = c.vehicle
        on_bus = plant.bus_live
        return [
            int(c.state),
            int(c.mode_active),
            u16(vehicle.soc_pct * 10) if vehicle else 0,
            s16(c.power_w),
            u16(vehicle.capacity_wh / 10) if vehicle else 0,
            u16(c.max_discharge_w),
            u16(c.max_charge_w),
            (_CAN_FORM if c.can_form else 0) | (_INTERLOCK if c.pcc_interlock else 0),
            u16(plant.bus_voltage_v * 10) if on_bus else 0,
            u16(plant.bus_frequency_hz * 100) if on_bus else 0,
            c.fault_code,
            int(c.mode_command),
            s16(c.power_setpoint_w),
            u16(c.frequency_setpoint_hz * 100),
            u16(c.voltage_setpoint_v * 10),
            u16(c.min_soc_pct * 10),
        ]

    def writable(self) -> dict[int, Validator]:
        m = BidirectionalCharger
        c = self.plant.chargers[self.device_id]
        modes = [ChargerMode.OFF, ChargerMode.FOLLOW] + ([ChargerMode.FORM] if c.can_form else [])
        nominal_v = self.plant.nominal_voltage_v
        v_lo, v_hi = round(nominal_v * 8), round(nominal_v * 12)  # 0.8..1.2 pu, V x10
        return {
            m.MODE_COMMAND: _one_of(*modes),
            m.POWER_SETPOINT: _any,
            m.FREQUENCY_SETPOINT: lambda raw: raw == 0 or 4500 <= raw <= 6500,
            m.VOLTAGE_SETPOINT: lambda raw: raw == 0 or v_lo <= raw <= v_hi,
            m.MIN_SOC: lambda raw: raw <= 1000,
        }

    def apply(self, changes: dict[int, int]) -> None:
        m = BidirectionalCharger
        plant = self.plant

        def get(offset: int) -> int | None:
            return changes.get(offset)

        power = get(m.POWER_SETPOINT)
        freq = get(m.FREQUENCY_SETPOINT)
        volt = get(m.VOLTAGE_SETPOINT)
        min_soc = get(m.MIN_SOC)
        plant.set_charger_setpoints(
            self.device_id,
            power_w=None if power is None else to_signed16(power),
            frequency_hz=None if freq is None else freq / 100.0,
            voltage_v=None if volt is None else volt / 10.0,
            min_soc_pct=None if min_soc is None else min_soc / 10.0,
        )
        mode = get(m.MODE_COMMAND)
        if mode is not None:
            plant.set_charger_mode(self.device_id, ChargerMode(mode))

    def garble(self, registers: list[int]) -> None:
        m = BidirectionalCharger
        registers[m.SOC] = 2500
        registers[m.AC_FREQUENCY] = 0
        registers[m.STATE] = 42


# --------------------------------------------------------------------------- V2L outlet
class OutletDevice(SimulatedDevice):
    driver = "v2l_outlet"
    size = V2LOutlet.READ_COUNT

    def render(self) -> list[int]:
        o = self.plant.outlets[self.device_id]
        vehicle = o.vehicle
        regs = [0] * self.size
        regs[V2LOutlet.STATE] = int(o.state)
        regs[V2LOutlet.SOC] = u16(vehicle.soc_pct * 10) if vehicle else 0
        regs[V2LOutlet.POWER] = u16(o.power_w)
        regs[V2LOutlet.RATING] = u16(o.rating_w)
        regs[V2LOutlet.VOLTAGE] = u16(o.voltage_v * 10)
        regs[V2LOutlet.VEHICLE_CUTOFF_SOC] = u16(vehicle.cutoff_soc_pct * 10) if vehicle else 0
        regs[V2LOutlet.CAPACITY] = u16(vehicle.capacity_wh / 10) if vehicle else 0
        regs[V2LOutlet.ENABLE] = int(o.enabled)
        return regs

    def writable(self) -> dict[int, Validator]:
        return {V2LOutlet.ENABLE: _one_of(0, 1)}

    def apply(self, changes: dict[int, int]) -> None:
        self.plant.set_outlet_enable(self.device_id, bool(changes[V2LOutlet.ENABLE]))

    def garble(self, registers: list[int]) -> None:
        registers[V2LOutlet.SOC] = 2500
        registers[V2LOutlet.STATE] = 9
        registers[V2LOutlet.VOLTAGE] = 0


class SerialOutletDevice(OutletDevice):
    """A V2L adapter meter with a line protocol (driver "v2l_serial"): the same bank as the
    Modbus adapter, put on a serial line by `firmware_sim.serial_line` instead of Modbus."""

    driver = "v2l_serial"


# --------------------------------------------------------------------------- SunSpec devices
class SunSpecDevice(SimulatedDevice):
    """SunSpec base: "SunS", the common model (1), then the device's models, then the end."""

    base_address = SUNSPEC_BASE

    def __init__(self, plant: Plant, device_id: str) -> None:
        super().__init__(plant, device_id)
        self._fixed: list[int] | None = None

    def _fixed_map(self) -> list[int]:
        """The whole map with every point that never changes in place (marker, common model,
        headers, scale factors, unimplemented points, end marker): built once per device, so a
        read only copies it and fills in the measurements. Built on first use, because a
        subclass picks its scale factors after this class's __init__."""
        if self._fixed is None:
            self._fixed = self._render_fixed()
            assert len(self._fixed) == self.size
        return self._fixed.copy()

    @abstractmethod
    def _render_fixed(self) -> list[int]:
        """The map as `_fixed_map` holds it (measurements left as placeholders)."""

    def _common(self) -> list[int]:
        """The marker and the common model (1)."""
        regs = [*SUNSPEC_MARKER, COMMON_MODEL_ID, COMMON_MODEL_LEN]
        regs += encode_ascii(MANUFACTURER, 16)  # Mn
        regs += encode_ascii(f"sim {self.driver}", 16)  # Md
        regs += encode_ascii("", 8)  # Opt
        regs += encode_ascii(FIRMWARE_VERSION, 8)  # Vr
        regs += encode_ascii(self.device_id, 16)  # SN
        regs += [self.unit_id, 0]  # DA, Pad (a pad register reads 0)
        assert len(regs) == COMMON_ID_ADDR + 2 + COMMON_MODEL_LEN - SUNSPEC_BASE
        return regs


_TOT_WH_EXP = offset_of(METER_203_POINTS, "TotWhExp")
_TOT_WH_IMP = offset_of(METER_203_POINTS, "TotWhImp")
"""Where model 203's energy accumulators are in its data (a lookup by name, once)."""


class MeterDevice(SunSpecDevice):
    """Grid meter at the PCC: SunSpec 203 (three-phase wye). W + is import."""

    driver = "sunspec_meter"
    size = SunSpecMeter.END_ADDR + 2 - SUNSPEC_BASE

    def __init__(self, plant: Plant, device_id: str) -> None:
        super().__init__(plant, device_id)
        self.w_sf = fitting_sf(plant.config.grid.connection_kva * 1000.0 * 1.2)

    def _render_fixed(self) -> list[int]:
        m = SunSpecMeter
        points = METER_203_POINTS
        # every point at its type's "not implemented" value, then those this meter has
        data = not_implemented(points)
        data[m.A_SF] = sf(A_SF)
        data[m.V_SF] = sf(V_SF)
        data[m.HZ_SF] = sf(HZ_SF)
        data[m.W_SF] = sf(self.w_sf)
        # TotWhExp and TotWhImp are filled in by render; the per-phase and the VAh/VArh
        # accumulators are not implemented (acc32 0), their scale factors are not either
        data[offset_of(points, "TotWh_SF")] = sf(ENERGY_SF)
        data[offset_of(points, "Evt") : offset_of(points, "Evt") + 2] = [0, 0]  # no events
        return [*self._common(), m.MODEL_ID, m.MODEL_LEN, *data, SUNSPEC_END_ID, 0]

    def render(self) -> list[int]:
        plant = self.plant
        grid = plant.grid
        m = SunSpecMeter
        regs = self._fixed_map()
        d = m.DATA - SUNSPEC_BASE  # data point 0 in the map
        v_ll = grid.voltage_v
        v_ln = v_ll / math.sqrt(3.0)
        watts = plant.meter_power_w
        phase_a = abs(watts) / (math.sqrt(3.0) * v_ll) if v_ll > 0 else 0.0
        regs[d + m.A] = scaled(3 * phase_a, A_SF)
        regs[d + m.A + 1 : d + m.A + 4] = [scaled(phase_a, A_SF)] * 3
        ln = scaled(v_ln, V_SF)
        regs[d + m.PHV] = regs[d + m.PHV_A] = regs[d + m.PHV_B] = regs[d + m.PHV_C] = ln
        regs[d + m.PPV : d + m.PPV + 4] = [scaled(v_ll, V_SF)] * 4
        regs[d + m.HZ] = scaled(grid.measured_frequency_hz, HZ_SF)
        regs[d + m.W] = scaled(watts, self.w_sf)
        regs[d + m.W + 1 : d + m.W + 4] = [scaled(watts / 3, self.w_sf)] * 3
        export_at = d + _TOT_WH_EXP
        import_at = d + _TOT_WH_IMP
        regs[export_at : export_at + 2] = acc32(plant.export_wh)
        regs[import_at : import_at + 2] = acc32(plant.import_wh)
        return regs

    def garble(self, registers: list[int]) -> None:
        m = SunSpecMeter
        first = m.DATA - SUNSPEC_BASE
        registers[first + m.HZ] = 0
        registers[first + m.PHV] = 32000
        registers[first + m.W] = 0x7FFF


class InverterDevice(SunSpecDevice):
    """PV inverter: SunSpec 103 (three-phase), 120 (nameplate), 123 (immediate controls)."""

    driver = "sunspec_inverter"
    size = SunSpecInverter.END_ADDR + 2 - SUNSPEC_BASE

    # offsets into model 123 that accept writes but change nothing in the plant (timers)
    _TIMERS: ClassVar[tuple[int, ...]] = (0, 1, 4, 5, 6)

    def __init__(self, plant: Plant, device_id: str) -> None:
        super().__init__(plant, device_id)
        self.inverter = plant.inverters[device_id]
        self.w_sf = fitting_sf(self.inverter.rating_w * 1.2)
        self._timers = dict.fromkeys(self._TIMERS, 0)

    def _controls_offset(self, model_offset: int) -> int:
        return SunSpecInverter.CONTROLS_DATA - SUNSPEC_BASE + model_offset

    def _render_fixed(self) -> list[int]:
        m = SunSpecInverter
        # every point at its type's "not implemented" value, then those this inverter has
        d103 = not_implemented(INVERTER_103_POINTS)
        d103[offset_of(INVERTER_103_POINTS, "A_SF")] = sf(A_SF)
        d103[m.V_SF] = sf(V_SF)
        d103[m.W_SF] = sf(self.w_sf)
        d103[m.HZ_SF] = sf(HZ_SF)
        d103[offset_of(INVERTER_103_POINTS, "WH_SF")] = sf(ENERGY_SF)
        events = offset_of(INVERTER_103_POINTS, "Evt1")
        d103[events : events + 4] = [0] * 4  # Evt1, Evt2: no events (EvtVnd1..4: none kept)

        d120 = not_implemented(NAMEPLATE_120_POINTS)
        d120[m.DERTYP] = 4  # PV
        d120[m.WRTG_SF] = sf(self.w_sf)

        d123 = not_implemented(CONTROLS_123_POINTS)
        d123[m.WMAXLIMPCT_SF] = sf(WMAXLIMPCT_SF)

        regs = self._common()
        regs += [m.MODEL_ID, m.MODEL_LEN, *d103]
        regs += [m.NAMEPLATE_ID, m.NAMEPLATE_LEN, *d120]
        regs += [m.CONTROLS_ID, m.CONTROLS_LEN, *d123]
        regs += [SUNSPEC_END_ID, 0]
        return regs

    def render(self) -> list[int]:
        plant = self.plant
        inv = self.inverter
        m = SunSpecInverter
        regs = self._fixed_map()
        d103 = m.DATA - SUNSPEC_BASE  # where each model's data starts in the map
        d120 = m.NAMEPLATE_DATA - SUNSPEC_BASE
        d123 = m.CONTROLS_DATA - SUNSPEC_BASE
        producing = inv.power_w > 0 or plant.bus_live
        v_ll = plant.bus_voltage_v if producing else 0.0
        v_ln = v_ll / math.sqrt(3.0)
        phase_a = inv.power_w / (math.sqrt(3.0) * v_ll) if v_ll > 0 else 0.0

        regs[d103] = scaled(3 * phase_a, A_SF)
        regs[d103 + 1 : d103 + 4] = [scaled(phase_a, A_SF)] * 3
        regs[d103 + 5 : d103 + 8] = [scaled(v_ll, V_SF)] * 3
        regs[d103 + m.PHV_A : d103 + m.PHV_A + 3] = [scaled(v_ln, V_SF)] * 3
        regs[d103 + m.W] = scaled(inv.power_w, self.w_sf)
        regs[d103 + m.HZ] = scaled(plant.bus_frequency_hz if producing else 0.0, HZ_SF)
        regs[d103 + 22 : d103 + 24] = acc32(inv.energy_wh)  # WH
        regs[d103 + m.ST] = inv.operating_state

        regs[d120 + m.WRTG] = u16(inv.rating_w / 10.0**self.w_sf)

        for offset, raw in self._timers.items():
            regs[d123 + offset] = raw
        regs[d123 + m.CONN] = int(inv.connected)
        regs[d123 + m.WMAXLIMPCT] = u16(inv.limit_pct / 10.0**WMAXLIMPCT_SF)
        regs[d123 + m.WMAXLIM_ENA] = int(inv.limit_enabled)
        return regs

    def writable(self) -> dict[int, Validator]:
        m = SunSpecInverter
        max_pct_raw = round(100 / 10.0**WMAXLIMPCT_SF)
        writable: dict[int, Validator] = {
            self._controls_offset(m.CONN): _one_of(0, 1),
            self._controls_offset(m.WMAXLIMPCT): lambda raw: raw <= max_pct_raw,
            self._controls_offset(m.WMAXLIM_ENA): _one_of(0, 1),
        }
        for offset in self._TIMERS:
            writable[self._controls_offset(offset)] = _any
        return writable

    def apply(self, changes: dict[int, int]) -> None:
        m = SunSpecInverter
        for offset in self._TIMERS:
            raw = changes.get(self._controls_offset(offset))
            if raw is not None:
                self._timers[offset] = raw
        conn = changes.get(self._controls_offset(m.CONN))
        pct = changes.get(self._controls_offset(m.WMAXLIMPCT))
        ena = changes.get(self._controls_offset(m.WMAXLIM_ENA))
        self.plant.set_pv_controls(
            self.device_id,
            connected=None if conn is None else bool(conn),
            limit_pct=None if pct is None else pct * 10.0**WMAXLIMPCT_SF,
            limit_enabled=None if ena is None else bool(ena),
        )

    def garble(self, registers: list[int]) -> None:
        m = SunSpecInverter
        first = m.DATA - SUNSPEC_BASE
        registers[first + m.HZ] = 0
        registers[first + m.ST] = 99
        registers[first + m.W] = s16(-30000)


DEVICE_TYPES: dict[str, type[SimulatedDevice]] = {
    cls.driver: cls
    for cls in (
        MeterDevice,
        BreakerDevice,
        PanelDevice,
        ChargerDevice,
        OutletDevice,
        SerialOutletDevice,
        InverterDevice,
    )
}


def build_devices(plant: Plant) -> dict[str, SimulatedDevice]:
    """One register bank per Modbus device of the site file, keyed by device id. OCPP
    stations have none: they speak OCPP-J to the controller (`ocpp_station.py`)."""
    return {
        device_id: DEVICE_TYPES[device.driver](plant, device_id)
        for device_id, device in plant.config.devices.items()
        if device.transport != "ocpp"
    }
