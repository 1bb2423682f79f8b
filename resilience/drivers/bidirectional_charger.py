"""Bidirectional (V2G/V2H) DC charger -> `ChargerReading`, and its mode and setpoints.

Units: power [W] signed, + discharging the vehicle into the site bus; capacity
[Wh] (register in Wh/10); state of charge and reserve [%] (registers in % x10);
AC voltage [V] line-to-line (V x10); AC frequency [Hz] (Hz x100).

One read of `READ_COUNT` registers per cycle. `command` writes MODE_COMMAND,
POWER_SETPOINT, FREQUENCY_SETPOINT, VOLTAGE_SETPOINT and MIN_SOC (registers
11..15) in one FC16 request, so the unit never runs a new mode with an old
setpoint. Nothing is clamped: a setpoint beyond the charger's rating, or a
FORM command to a charger not configured to form, raises `ValueError` (the
caller must never ask for it); 0 Hz and 0 V setpoints mean "nominal".
"""

from __future__ import annotations

import math
from typing import Final, Self

from resilience.config import Device
from resilience.devices import ChargerCommand, ChargerReading
from resilience.drivers import registers
from resilience.drivers.base import (
    FREQUENCY_MAX_HZ,
    FREQUENCY_MIN_HZ,
    VOLTAGE_MAX_V,
    RegisterDriver,
)
from resilience.drivers.registers import from_signed16, to_signed16
from resilience.model import ChargerMode, ChargerState
from resilience.transport.modbus import RegisterTransport

__all__ = ["BidirectionalChargerDriver"]

_R = registers.BidirectionalCharger
_KNOWN_FAULTS = {
    _R.FAULT_NONE,
    _R.FAULT_INTERNAL,
    _R.FAULT_OVERLOAD,
    _R.FAULT_ANTI_ISLANDING,
    _R.FAULT_UNPLUGGED_WHILE_ACTIVE,
}


class BidirectionalChargerDriver(RegisterDriver):
    """Implements `resilience.devices.BidirectionalCharger`.

    `rating_w` [W] is the charger's AC rating in both directions: readings beyond
    twice it are not believed and setpoints beyond it are refused. `can_form`
    says whether the site config lets this charger form the grid.
    """

    READ_COUNT: Final = _R.READ_COUNT

    def __init__(
        self,
        transport: RegisterTransport,
        unit_id: int,
        *,
        name: str,
        rating_w: float,
        can_form: bool = False,
    ) -> None:
        super().__init__(transport, unit_id, name=name)
        if not (math.isfinite(rating_w) and rating_w > 0):
            raise ValueError(f"{name}: rating {rating_w} W must be positive")
        self.rating_w = rating_w
        self.can_form = can_form

    @classmethod
    def from_config(cls, name: str, device: Device, transport: RegisterTransport) -> Self:
        if device.rating_w is None:
            raise ValueError(f"devices.{name}: a bidirectional_charger needs rating_w")
        return cls(
            transport,
            device.unit_id,
            name=name,
            rating_w=device.rating_w,
            can_form=device.can_form,
        )

    async def read(self) -> ChargerReading:
        raw = await self._read(_R.STATE, _R.READ_COUNT)  # the map starts at 0
        return self._decoded(raw, self._decode)

    def _decode(self, raw: list[int]) -> ChargerReading:
        state = self._enum(ChargerState, "STATE", _R.STATE, raw[_R.STATE])
        mode = self._enum(ChargerMode, "MODE_ACTIVE", _R.MODE_ACTIVE, raw[_R.MODE_ACTIVE])
        soc = self._check_pct("SOC", _R.SOC, raw[_R.SOC] / 10)
        watts = float(to_signed16(raw[_R.POWER]))
        power = self._check_power("POWER", _R.POWER, watts, self.rating_w)
        capacity = float(raw[_R.CAPACITY] * 10)
        if state is not ChargerState.UNPLUGGED and capacity <= 0:
            raise self._bad(
                "CAPACITY",
                _R.CAPACITY,
                f"{capacity:g} Wh with a vehicle plugged (state"
                f" {state.name}); a plugged vehicle has a capacity > 0 Wh",
            )
        top = 2 * self.rating_w
        max_discharge = self._check_range(
            "MAX_DISCHARGE", _R.MAX_DISCHARGE, float(raw[_R.MAX_DISCHARGE]), 0.0, top, "W"
        )
        max_charge = self._check_range(
            "MAX_CHARGE", _R.MAX_CHARGE, float(raw[_R.MAX_CHARGE]), 0.0, top, "W"
        )
        volts = self._check_voltage("AC_VOLTAGE", _R.AC_VOLTAGE, raw[_R.AC_VOLTAGE] / 10)
        hertz = self._check_frequency(
            "AC_FREQUENCY", _R.AC_FREQUENCY, raw[_R.AC_FREQUENCY] / 100, volts
        )
        fault = raw[_R.FAULT_CODE]
        if fault not in _KNOWN_FAULTS:
            known = ", ".join(str(f) for f in sorted(_KNOWN_FAULTS))
            raise self._bad("FAULT_CODE", _R.FAULT_CODE, f"{fault} is not a known fault ({known})")
        min_soc = self._check_pct("MIN_SOC", _R.MIN_SOC, raw[_R.MIN_SOC] / 10)
        # What the unit was told and keeps (a dead bus clears neither register): OFF holds
        # nothing; FOLLOW (or FORM held back by its PCC interlock) its power setpoint.
        told = self._enum(ChargerMode, "MODE_COMMAND", _R.MODE_COMMAND, raw[_R.MODE_COMMAND])
        held = 0.0 if told is ChargerMode.OFF else float(to_signed16(raw[_R.POWER_SETPOINT]))
        return ChargerReading(
            state=state,
            mode=mode,
            soc_pct=soc,
            power_w=power,
            capacity_wh=capacity,
            max_discharge_w=max_discharge,
            max_charge_w=max_charge,
            can_form=bool(raw[_R.CAPABILITIES] & _R.CAP_CAN_FORM),
            pcc_interlock=bool(raw[_R.CAPABILITIES] & _R.CAP_PCC_INTERLOCK),
            ac_voltage_v=volts,
            ac_frequency_hz=hertz,
            fault_code=fault,
            min_soc_pct=min_soc,
            held_setpoint_w=held,
            told_mode=told,
        )

    def encode(self, command: ChargerCommand) -> list[int]:
        """The five registers MODE_COMMAND..MIN_SOC for `command`; ValueError if unsafe."""
        mode = ChargerMode(command.mode)
        if mode is ChargerMode.FORM and not self.can_form:
            raise ValueError(f"{self.name}: not configured to form the grid (can_form = false)")
        power = command.power_setpoint_w
        if not (math.isfinite(power) and abs(power) <= self.rating_w):
            raise ValueError(
                f"{self.name}: power setpoint {power} W is beyond the charger's rating"
                f" ±{self.rating_w:g} W"
            )
        hertz = command.frequency_setpoint_hz
        if not (hertz == 0.0 or FREQUENCY_MIN_HZ <= hertz <= FREQUENCY_MAX_HZ):
            raise ValueError(
                f"{self.name}: frequency setpoint {hertz} Hz is neither 0 (nominal) nor within"
                f" {FREQUENCY_MIN_HZ:g}..{FREQUENCY_MAX_HZ:g} Hz"
            )
        volts = command.voltage_setpoint_v
        if not (0.0 <= volts <= VOLTAGE_MAX_V):
            raise ValueError(
                f"{self.name}: voltage setpoint {volts} V is outside 0..{VOLTAGE_MAX_V:g} V"
                " (0 = nominal)"
            )
        min_soc = command.min_soc_pct
        if not 0.0 <= min_soc <= 100.0:
            raise ValueError(f"{self.name}: minimum SoC {min_soc} % is outside 0..100 %")
        try:
            power_raw = from_signed16(round(power))
        except ValueError:
            raise ValueError(
                f"{self.name}: power setpoint {power} W does not fit the signed 16-bit"
                " POWER_SETPOINT register (±32767 W)"
            ) from None
        return [
            int(mode),
            power_raw,
            round(hertz * 100),
            round(volts * 10),
            round(min_soc * 10),
        ]

    async def command(self, command: ChargerCommand) -> None:
        """Mode and setpoints in one FC16 write of registers 11..15."""
        await self._write(_R.MODE_COMMAND, self.encode(command))
