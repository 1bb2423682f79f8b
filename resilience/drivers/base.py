"""What every register driver shares: its transport, its name, and range checks.

A driver reads a block of raw registers through a `RegisterTransport`, turns
them into a reading in physical units and refuses to believe any value outside
physical range: it raises `BadReply` naming the device, the register, the value
and the allowed range, so the cycle marks the device unavailable instead of
acting on nonsense.

Limits [V], [Hz], [%] are the plausibility bounds of the field (a 400 V site,
50/60 Hz), not the operating windows, which belong to the policies.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from enum import IntEnum
from typing import Any, Self, TypeVar

from resilience.config import Device
from resilience.transport.errors import BadReply, describe_endpoint
from resilience.transport.modbus import RegisterTransport

__all__ = [
    "DEAD_VOLTAGE_V",
    "FREQUENCY_MAX_HZ",
    "FREQUENCY_MIN_HZ",
    "RATING_MARGIN",
    "VOLTAGE_MAX_V",
    "RegisterDriver",
]

VOLTAGE_MAX_V = 1000.0
"""[V] highest believable voltage (line-to-line); 0 V is a dead bus."""
FREQUENCY_MIN_HZ = 40.0
FREQUENCY_MAX_HZ = 70.0
"""[Hz] a live AC system reads within 40..70 Hz."""
DEAD_VOLTAGE_V = 50.0
"""[V] a frequency of 0 Hz is believable only below this voltage (no waveform to measure)."""
RATING_MARGIN = 2.0
"""A measured power may reach this multiple of the rating (inrush, overload) and no more."""

_E = TypeVar("_E", bound=IntEnum)
_T = TypeVar("_T")


class RegisterDriver:
    """Base of the drivers: `transport` reaches unit `unit_id`; `name` is the config's id."""

    _last_decoded: tuple[list[int], Any] | None = None  # see `_decoded`

    def __init__(self, transport: RegisterTransport, unit_id: int, *, name: str) -> None:
        if not 0 <= unit_id <= 255:
            raise ValueError(f"{name}: unit id {unit_id} is outside 0..255")
        self.transport = transport
        self.unit_id = unit_id
        self.name = name

    @classmethod
    def from_config(cls, name: str, device: Device, transport: RegisterTransport) -> Self:
        """The driver for config entry `devices.<name>`, talking through `transport`."""
        return cls(transport, device.unit_id, name=name)

    @property
    def endpoint(self) -> str:
        """``host:port unit N`` (the transport's own description when it has one)."""
        where = getattr(self.transport, "endpoint", None)
        return describe_endpoint(
            str(where) if where else type(self.transport).__name__, self.unit_id
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.endpoint})"

    # ------------------------------------------------------------------ I/O
    def _read(self, address: int, count: int) -> Awaitable[list[int]]:
        # The transport's own awaitable, not a coroutine around it: one frame less on
        # every read of every device, every cycle.
        return self.transport.read(self.unit_id, address, count)

    def _write(self, address: int, values: Sequence[int]) -> Awaitable[None]:
        return self.transport.write(self.unit_id, address, values)

    def _decoded(self, raw: list[int], decode: Callable[[list[int]], _T]) -> _T:
        """`decode(raw)`, reusing the last reading when the reply is identical to the last one.

        A reading is immutable and depends only on the registers and the driver's fixed
        settings, so an identical reply decodes to an equal reading: a steady field (most
        cycles of a quiet site, or of a drill at max speed) costs one list comparison per
        device instead of every range check again. A reply that fails to decode is never
        remembered, so it is refused again each time. One `decode` per driver.
        """
        last = self._last_decoded
        if last is not None and last[0] == raw:
            reading: _T = last[1]
            return reading
        reading = decode(raw)
        self._last_decoded = (list(raw), reading)
        return reading

    # ------------------------------------------------------------------ checks
    def _bad(self, register: str, address: int, problem: str) -> BadReply:
        where = getattr(self.transport, "endpoint", None)
        return BadReply(
            f"{self.name} ({self.endpoint}): register {register} at {address}: {problem}",
            endpoint=str(where) if where else None,
            unit_id=self.unit_id,
            address=address,
        )

    def _check_range(
        self,
        register: str,
        address: int,
        value: float,
        low: float,
        high: float,
        unit: str,
    ) -> float:
        """`value` when low <= value <= high, else BadReply."""
        if not (math.isfinite(value) and low <= value <= high):
            raise self._bad(
                register, address, f"{value:g} {unit} is outside {low:g}..{high:g} {unit}"
            )
        return value

    def _check_voltage(self, register: str, address: int, volts: float) -> float:
        return self._check_range(register, address, volts, 0.0, VOLTAGE_MAX_V, "V")

    def _check_frequency(self, register: str, address: int, hertz: float, volts: float) -> float:
        """40..70 Hz, or 0 Hz on a dead conductor (below `DEAD_VOLTAGE_V`, here `volts`)."""
        if hertz == 0.0 and volts < DEAD_VOLTAGE_V:
            return hertz
        if not (math.isfinite(hertz) and FREQUENCY_MIN_HZ <= hertz <= FREQUENCY_MAX_HZ):
            raise self._bad(
                register,
                address,
                f"{hertz:g} Hz at {volts:g} V is outside {FREQUENCY_MIN_HZ:g}..{FREQUENCY_MAX_HZ:g}"
                f" Hz (0 Hz only below {DEAD_VOLTAGE_V:g} V)",
            )
        return hertz

    def _check_power(self, register: str, address: int, watts: float, rating_w: float) -> float:
        """Within ±`RATING_MARGIN` x `rating_w` [W]."""
        limit = RATING_MARGIN * rating_w
        return self._check_range(register, address, watts, -limit, limit, "W")

    def _check_pct(self, register: str, address: int, pct: float) -> float:
        return self._check_range(register, address, pct, 0.0, 100.0, "%")

    def _enum(self, kind: type[_E], register: str, address: int, raw: int) -> _E:
        try:
            return kind(raw)
        except ValueError:
            known = ", ".join(f"{m.value} {m.name}" for m in kind)
            raise self._bad(
                register, address, f"{raw} is not a known {kind.__name__} ({known})"
            ) from None

    def _flag(self, register: str, address: int, raw: int) -> bool:
        """A 0/1 register."""
        if raw not in (0, 1):
            raise self._bad(register, address, f"{raw} is neither 0 nor 1")
        return raw == 1
