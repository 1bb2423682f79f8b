"""V2L outlet adapter (a vehicle's own AC socket feeding one small circuit) -> `OutletReading`.

Units: power and rating [W] (power delivered, never negative), voltage [V]
(V x10; the socket is single-phase), state of charge and the vehicle's V2L
cut-off [%] (% x10), capacity [Wh] (Wh/10). One read of `READ_COUNT`
registers per cycle; `enable` writes the ENABLE register (the contactor).
"""

from __future__ import annotations

import math
from typing import Final, Self

from resilience.config import Device
from resilience.devices import OutletReading
from resilience.drivers import registers
from resilience.drivers.base import RegisterDriver
from resilience.model import V2LState
from resilience.transport.modbus import RegisterTransport

__all__ = ["V2LOutletDriver"]

_R = registers.V2LOutlet


class V2LOutletDriver(RegisterDriver):
    """Implements `resilience.devices.V2LOutlet`.

    `rating_w` [W] (the site config's) bounds the believable power at 2x; without
    it the outlet's own RATING register does.
    """

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
        if rating_w is not None and not (math.isfinite(rating_w) and rating_w > 0):
            raise ValueError(f"{name}: rating {rating_w} W must be positive")
        self.rating_w = rating_w

    @classmethod
    def from_config(cls, name: str, device: Device, transport: RegisterTransport) -> Self:
        return cls(transport, device.unit_id, name=name, rating_w=device.rating_w)

    async def read(self) -> OutletReading:
        raw = await self._read(_R.STATE, _R.READ_COUNT)  # the map starts at 0
        return self._decoded(raw, self._decode)

    def _decode(self, raw: list[int]) -> OutletReading:
        state = self._enum(V2LState, "STATE", _R.STATE, raw[_R.STATE])
        plugged = state is not V2LState.UNPLUGGED
        soc = self._check_pct("SOC", _R.SOC, raw[_R.SOC] / 10)
        rating = float(raw[_R.RATING])
        if plugged and rating <= 0:
            raise self._bad("RATING", _R.RATING, f"{rating:g} W with a vehicle plugged")
        bound = self.rating_w if self.rating_w is not None else rating
        power = self._check_range("POWER", _R.POWER, float(raw[_R.POWER]), 0.0, 2 * bound, "W")
        volts = self._check_voltage("VOLTAGE", _R.VOLTAGE, raw[_R.VOLTAGE] / 10)
        cutoff = self._check_pct(
            "VEHICLE_CUTOFF_SOC", _R.VEHICLE_CUTOFF_SOC, raw[_R.VEHICLE_CUTOFF_SOC] / 10
        )
        capacity = float(raw[_R.CAPACITY] * 10)
        if plugged and capacity <= 0:
            raise self._bad(
                "CAPACITY",
                _R.CAPACITY,
                f"{capacity:g} Wh with a vehicle plugged (state"
                f" {state.name}); a plugged vehicle has a capacity > 0 Wh",
            )
        enabled = self._flag("ENABLE", _R.ENABLE, raw[_R.ENABLE])
        return OutletReading(
            state=state,
            soc_pct=soc,
            power_w=power,
            rating_w=rating,
            voltage_v=volts,
            vehicle_cutoff_soc_pct=cutoff,
            capacity_wh=capacity,
            enabled=enabled,
        )

    async def enable(self, on: bool) -> None:
        """Close (True) or open (False) the outlet's contactor."""
        await self._write(_R.ENABLE, [1 if on else 0])
