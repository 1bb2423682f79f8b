"""PCC breaker with position feedback and a sync-check relay -> `BreakerReading`.

Units: voltages [V] line-to-line (registers in V x10), frequencies [Hz]
(registers in Hz x100), phase difference [deg], grid angle minus bus angle, in
-180..180 (signed register in deg x10). One read of `READ_COUNT` registers per
cycle; `command` writes the COMMAND register (FC6).
"""

from __future__ import annotations

from typing import Final

from resilience.drivers import registers
from resilience.drivers.base import RegisterDriver
from resilience.drivers.registers import to_signed16
from resilience.model import BreakerCommand, BreakerPosition, BreakerReading

__all__ = ["PccBreaker"]

_R = registers.PccBreaker


class PccBreaker(RegisterDriver):
    """Implements `resilience.devices.Breaker`."""

    READ_COUNT: Final = _R.READ_COUNT

    async def read(self) -> BreakerReading:
        raw = await self._read(_R.POSITION, _R.READ_COUNT)  # the map starts at 0
        return self._decoded(raw, self._decode)

    def _decode(self, raw: list[int]) -> BreakerReading:
        position = self._enum(BreakerPosition, "POSITION", _R.POSITION, raw[_R.POSITION])
        self._enum(BreakerCommand, "COMMAND", _R.COMMAND, raw[_R.COMMAND])
        bus_v = self._check_voltage("BUS_VOLTAGE", _R.BUS_VOLTAGE, raw[_R.BUS_VOLTAGE] / 10)
        bus_hz = self._check_frequency(
            "BUS_FREQUENCY", _R.BUS_FREQUENCY, raw[_R.BUS_FREQUENCY] / 100, bus_v
        )
        grid_v = self._check_voltage("GRID_VOLTAGE", _R.GRID_VOLTAGE, raw[_R.GRID_VOLTAGE] / 10)
        grid_hz = self._check_frequency(
            "GRID_FREQUENCY", _R.GRID_FREQUENCY, raw[_R.GRID_FREQUENCY] / 100, grid_v
        )
        phase = self._check_range(
            "PHASE_DIFF",
            _R.PHASE_DIFF,
            to_signed16(raw[_R.PHASE_DIFF]) / 10,
            -180.0,
            180.0,
            "deg",
        )
        return BreakerReading(
            position=position,
            fail_to_operate=bool(raw[_R.STATUS] & _R.STATUS_FAIL_TO_OPERATE),
            operations=raw[_R.OPERATIONS],
            bus_voltage_v=bus_v,
            bus_frequency_hz=bus_hz,
            grid_voltage_v=grid_v,
            grid_frequency_hz=grid_hz,
            phase_diff_deg=phase,
        )

    async def command(self, command: BreakerCommand) -> None:
        """Tell the breaker to open or close (NONE clears the command register)."""
        command = BreakerCommand(command)
        await self._write(_R.COMMAND, [int(command)])
