"""PV inverter: SunSpec models 103, 120 and 123 -> `InverterReading`, and its power limit.

Units: power and rating [W] (+ into the site bus), frequency [Hz], voltage [V]
of phase A to neutral (model 103 PhVphA), limit [%] of the rating (WMaxLimPct).

The three models sit back to back (103 at 40070, nameplate 120 at 40122,
controls 123 at 40150), so each cycle is one read of `READ_COUNT` (102)
registers from `DATA` through the controls' WMaxLimPct_SF: measurements, the
rating, the limit in force and every scale factor come fresh each cycle, and
the nameplate and controls model ids are checked in passing. The SunSpec marker
and model 103 are verified on the first read and after any failure.

`limit(pct)` writes WMaxLimPct then WMaxLim_Ena (two single-register writes:
the registers between them are the limit's timing, which we leave alone).
"""

from __future__ import annotations

import math
from typing import Final, Self

from resilience.config import Device
from resilience.devices import InverterReading
from resilience.drivers import registers
from resilience.drivers.sunspec import SunSpecDriver, scaled
from resilience.transport.modbus import RegisterTransport

__all__ = ["SunSpecInverter"]

_R = registers.SunSpecInverter
_NAMEPLATE = _R.NAMEPLATE_DATA - _R.DATA  # offsets of the later models within one read
_CONTROLS = _R.CONTROLS_DATA - _R.DATA
_KNOWN_STATES = range(_R.ST_OFF, _R.ST_STANDBY + 1)


class SunSpecInverter(SunSpecDriver):
    """Implements `resilience.devices.PVInverter`.

    `rating_w` [W] (from the site config) bounds the believable power at ±2x;
    without it the nameplate WRtg does.
    """

    MODEL_ID = _R.MODEL_ID
    MODEL_LEN = _R.MODEL_LEN
    DATA: Final = _R.DATA
    READ_COUNT: Final = _CONTROLS + _R.WMAXLIMPCT_SF + 1  # 102: DATA .. WMaxLimPct_SF

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
        self._limit_sf: int | None = None

    @classmethod
    def from_config(cls, name: str, device: Device, transport: RegisterTransport) -> Self:
        return cls(transport, device.unit_id, name=name, rating_w=device.rating_w)

    async def read(self) -> InverterReading:
        return await self._read_verified(_R.DATA, self.READ_COUNT, self._decode)

    async def limit(self, pct: float) -> None:
        """Limit the output to `pct` [%] of WRtg; 100 lifts the limit (WMaxLim_Ena = 0)."""
        if not (math.isfinite(pct) and 0.0 <= pct <= 100.0):
            raise ValueError(f"{self.name}: power limit {pct} % is outside 0..100 %")
        if self._limit_sf is None:
            await self.read()  # learns WMaxLimPct_SF
        assert self._limit_sf is not None
        sf = self._limit_sf
        raw = round(pct / 10**sf) if sf >= 0 else round(pct * 10 ** (-sf))
        if raw > 0xFFFF:
            raise ValueError(f"{self.name}: {pct} % does not fit WMaxLimPct with scale factor {sf}")
        enable = 0 if pct >= 100.0 else 1
        await self._write(_R.CONTROLS_DATA + _R.WMAXLIMPCT, [raw])
        await self._write(_R.CONTROLS_DATA + _R.WMAXLIM_ENA, [enable])

    def _decode(self, raw: list[int]) -> InverterReading:
        def at(offset: int) -> int:
            return _R.DATA + offset

        self._model_header(
            "nameplate model id",
            _R.NAMEPLATE_ID_ADDR,
            raw[_NAMEPLATE - 2],
            raw[_NAMEPLATE - 1],
            _R.NAMEPLATE_ID,
            _R.NAMEPLATE_LEN,
        )
        self._model_header(
            "controls model id",
            _R.CONTROLS_ID_ADDR,
            raw[_CONTROLS - 2],
            raw[_CONTROLS - 1],
            _R.CONTROLS_ID,
            _R.CONTROLS_LEN,
        )
        wrtg_at = _NAMEPLATE + _R.WRTG
        wrtg_sf = self._sf("WRtg_SF", at(_NAMEPLATE + _R.WRTG_SF), raw[_NAMEPLATE + _R.WRTG_SF])
        rating = scaled(self._uint16("WRtg", at(wrtg_at), raw[wrtg_at]), wrtg_sf)
        if rating <= 0:
            raise self._bad("WRtg", at(wrtg_at), f"rating {rating:g} W is not positive")

        v_sf = self._sf("V_SF", at(_R.V_SF), raw[_R.V_SF])
        volts = scaled(self._uint16("PhVphA", at(_R.PHV_A), raw[_R.PHV_A]), v_sf)
        self._check_voltage("PhVphA", at(_R.PHV_A), volts)
        hz_sf = self._sf("Hz_SF", at(_R.HZ_SF), raw[_R.HZ_SF])
        hertz = scaled(self._uint16("Hz", at(_R.HZ), raw[_R.HZ]), hz_sf)
        self._check_frequency("Hz", at(_R.HZ), hertz, volts)
        w_sf = self._sf("W_SF", at(_R.W_SF), raw[_R.W_SF])
        watts = scaled(self._int16("W", at(_R.W), raw[_R.W]), w_sf)
        self._check_power("W", at(_R.W), watts, self.rating_w or rating)
        state = raw[_R.ST]
        if state not in _KNOWN_STATES:
            raise self._bad("St", at(_R.ST), f"{state} is not a known operating state (1..8)")

        ena_at = _CONTROLS + _R.WMAXLIM_ENA
        enabled = self._flag("WMaxLim_Ena", at(ena_at), raw[ena_at])
        pct_at = _CONTROLS + _R.WMAXLIMPCT
        sf_at = _CONTROLS + _R.WMAXLIMPCT_SF
        limit_sf = self._sf("WMaxLimPct_SF", at(sf_at), raw[sf_at])
        limit_pct = 100.0
        if enabled:
            limit_pct = scaled(self._uint16("WMaxLimPct", at(pct_at), raw[pct_at]), limit_sf)
            self._check_pct("WMaxLimPct", at(pct_at), limit_pct)
        self._limit_sf = limit_sf
        return InverterReading(
            power_w=watts,
            rating_w=rating,
            frequency_hz=hertz,
            voltage_v=volts,
            state=state,
            limit_pct=limit_pct,
        )
