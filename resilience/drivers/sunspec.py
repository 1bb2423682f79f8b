"""SunSpec plumbing shared by the meter and inverter drivers.

A SunSpec device starts at 40000 with the marker "SunS", then the common model
(id 1, 66 registers), then its first model at 40070. `SunSpecDriver.verify`
checks all of that in one read of 72 registers, so a driver pointed at the
wrong device (or at a non-SunSpec one) says so instead of decoding garbage.

Points are scaled: value = raw x 10^sf, with the scale factor ``sunssf`` a
signed 16-bit register in -10..10. A point whose raw value is the SunSpec
"not implemented" marker (0x8000 for int16 and sunssf, 0xFFFF for uint16 and
enum16) is refused with `BadReply` wherever the driver needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from resilience.drivers import registers
from resilience.drivers.base import RegisterDriver
from resilience.drivers.registers import to_signed16

__all__ = ["SunSpecDriver", "scaled"]

_T = TypeVar("_T")

_NOT_IMPLEMENTED_UINT16 = 0xFFFF
_VERIFY_COUNT = registers.FIRST_MODEL_ADDR + 2 - registers.SUNSPEC_BASE  # 72: marker .. model len


class SunSpecDriver(RegisterDriver):
    """A `RegisterDriver` for a SunSpec device whose first model is `MODEL_ID`."""

    MODEL_ID: int = 0
    MODEL_LEN: int = 0

    _verified: bool = False

    async def verify(self) -> None:
        """Check the SunSpec marker, the common model and `MODEL_ID` at 40070 (one read)."""
        raw = await self._read(registers.SUNSPEC_BASE, _VERIFY_COUNT)
        marker = (raw[0], raw[1])
        if marker != registers.SUNSPEC_MARKER:
            text = bytes(b for r in marker for b in (r >> 8, r & 0xFF))
            raise self._bad(
                "SunSpec marker",
                registers.SUNSPEC_BASE,
                f"{text!r} (0x{raw[0]:04X} 0x{raw[1]:04X}) is not 'SunS': not a SunSpec device",
            )
        common_at = registers.COMMON_ID_ADDR - registers.SUNSPEC_BASE
        if (raw[common_at], raw[common_at + 1]) != (
            registers.COMMON_MODEL_ID,
            registers.COMMON_MODEL_LEN,
        ):
            raise self._bad(
                "common model id",
                registers.COMMON_ID_ADDR,
                f"model {raw[common_at]} length {raw[common_at + 1]}, expected model"
                f" {registers.COMMON_MODEL_ID} length {registers.COMMON_MODEL_LEN}",
            )
        model_at = registers.FIRST_MODEL_ADDR - registers.SUNSPEC_BASE
        model_id, model_len = raw[model_at], raw[model_at + 1]
        if (model_id, model_len) != (self.MODEL_ID, self.MODEL_LEN):
            raise self._bad(
                "model id",
                registers.FIRST_MODEL_ADDR,
                f"model {model_id} length {model_len}, expected model {self.MODEL_ID}"
                f" length {self.MODEL_LEN}",
            )
        self._verified = True

    async def _read_verified(
        self, address: int, count: int, decode: Callable[[list[int]], _T]
    ) -> _T:
        """Read and decode a block, checking the device's identity first after a start or
        after any error (a failed read or a reply that does not decode)."""
        try:
            if not self._verified:
                await self.verify()
            return self._decoded(await self._read(address, count), decode)
        except BaseException:
            self._verified = False
            raise

    def _model_header(
        self, register: str, address: int, raw_id: int, raw_len: int, model_id: int, model_len: int
    ) -> None:
        """Check a later model's id and length registers (`address` is the id's)."""
        if (raw_id, raw_len) != (model_id, model_len):
            raise self._bad(
                register,
                address,
                f"model {raw_id} length {raw_len}, expected model {model_id} length {model_len}",
            )

    def _sf(self, register: str, address: int, raw: int) -> int:
        """A sunssf scale factor: signed, -10..10."""
        if raw == registers.SUNSPEC_NOT_IMPLEMENTED_INT16:
            raise self._bad(register, address, "scale factor not implemented (0x8000)")
        sf = to_signed16(raw)
        if not -10 <= sf <= 10:
            raise self._bad(register, address, f"scale factor {sf} is outside -10..10")
        return sf

    def _int16(self, register: str, address: int, raw: int) -> int:
        if raw == registers.SUNSPEC_NOT_IMPLEMENTED_INT16:
            raise self._bad(register, address, "required point not implemented (0x8000)")
        return to_signed16(raw)

    def _uint16(self, register: str, address: int, raw: int) -> int:
        if raw == _NOT_IMPLEMENTED_UINT16:
            raise self._bad(register, address, "required point not implemented (0xFFFF)")
        return raw


def scaled(raw: int, sf: int) -> float:
    """raw x 10^sf, dividing for negative sf so that 2300 x 10^-1 is exactly 230.0."""
    return float(raw * 10**sf) if sf >= 0 else raw / 10 ** (-sf)
