"""Grid meter at the PCC: SunSpec model 203 (three-phase wye) -> `GridReading`.

Units: voltage [V] line-to-line (the model's PPV, average of the three
line-to-line voltages; PhV is line-to-neutral and not used), frequency [Hz],
power [W], positive when the site imports from the grid (SunSpec meter sign).

On its first read, and on the first read after any failure, the driver checks
that the device is a SunSpec model 203 meter (one extra read of 72 registers);
each cycle then costs one read of `READ_COUNT` registers at `DATA`.
"""

from __future__ import annotations

from typing import Final, Self

from resilience.config import Device
from resilience.drivers import registers
from resilience.drivers.sunspec import SunSpecDriver, scaled
from resilience.model import GridReading
from resilience.transport.modbus import RegisterTransport

__all__ = ["SunSpecMeter"]

_R = registers.SunSpecMeter


class SunSpecMeter(SunSpecDriver):
    """Implements `resilience.devices.Meter`.

    `rating_w` [W], when given, bounds the believable power at ±2x; without it
    the power is checked only for being implemented.
    """

    MODEL_ID = _R.MODEL_ID
    MODEL_LEN = _R.MODEL_LEN
    DATA: Final = _R.DATA
    READ_COUNT: Final = _R.READ_COUNT

    def __init__(
        self,
        transport: RegisterTransport,
        unit_id: int,
        *,
        name: str,
        rating_w: float | None = None,
    ) -> None:
        super().__init__(transport, unit_id, name=name)
        self.rating_w = rating_w

    @classmethod
    def from_config(cls, name: str, device: Device, transport: RegisterTransport) -> Self:
        return cls(transport, device.unit_id, name=name, rating_w=device.rating_w)

    async def read(self) -> GridReading:
        return await self._read_verified(_R.DATA, _R.READ_COUNT, self._decode)

    def _decode(self, raw: list[int]) -> GridReading:
        def at(offset: int) -> int:
            return _R.DATA + offset

        v_sf = self._sf("V_SF", at(_R.V_SF), raw[_R.V_SF])
        hz_sf = self._sf("Hz_SF", at(_R.HZ_SF), raw[_R.HZ_SF])
        w_sf = self._sf("W_SF", at(_R.W_SF), raw[_R.W_SF])
        volts = scaled(self._int16("PPV", at(_R.PPV), raw[_R.PPV]), v_sf)
        self._check_voltage("PPV", at(_R.PPV), volts)
        hertz = scaled(self._int16("Hz", at(_R.HZ), raw[_R.HZ]), hz_sf)
        self._check_frequency("Hz", at(_R.HZ), hertz, volts)
        watts = scaled(self._int16("W", at(_R.W), raw[_R.W]), w_sf)
        if self.rating_w is not None:
            self._check_power("W", at(_R.W), watts, self.rating_w)
        return GridReading(voltage_v=volts, frequency_hz=hertz, power_w=watts)
