"""V2L adapter meter with an ASCII line protocol on a serial port -> `OutletReading`.

Some V2L adapters have no Modbus: they answer ``READ`` with one checksummed
ASCII line (docs/serial-line-protocol.md, `resilience.drivers.v2l_line`). Its
eight fields are the registers of the Modbus adapter, in the same order and
units, so this driver is `V2LOutletDriver` over a small adapter,
`V2LLineRegisters`, that turns register reads and the ENABLE write into line
exchanges: every range check and every unit is the Modbus driver's.

Site file: ``driver = "v2l_serial"``, ``serial_port``, ``baudrate`` (transport
"serial", 8N1 by default). Failures: a line with a bad checksum, no terminator or
no checksum is `BadFrame`; a well-framed line that is not the expected reply,
has the wrong number of fields or impossible values is `BadReply`; ``ERR,<code>``
is `DeviceExceptionResponse` with that code; silence is `DeviceTimeout`.

Units: as `resilience.drivers.v2l_outlet` (W, V, %, Wh).
"""

from __future__ import annotations

from collections.abc import Sequence

from resilience.drivers import registers, v2l_line
from resilience.drivers.v2l_outlet import V2LOutletDriver
from resilience.transport.errors import (
    BadFrame,
    BadReply,
    DeviceExceptionResponse,
    describe_endpoint,
)
from resilience.transport.serial import LineTransport

__all__ = ["V2LLineRegisters", "V2LSerialDriver"]

_R = registers.V2LOutlet


class V2LLineRegisters:
    """The V2L adapter's eight registers, read and written through its line protocol.

    Implements `RegisterTransport` for the addresses `V2LOutletDriver` uses: a read
    of any part of 0..7 is one ``READ`` exchange; a write of ENABLE is ``EN,<0|1>``.
    The unit id is ignored (one meter per serial port).
    """

    def __init__(self, line: LineTransport) -> None:
        self.line = line

    @property
    def endpoint(self) -> str:
        return self.line.endpoint

    async def read(self, unit_id: int, address: int, count: int) -> list[int]:
        if not (address >= 0 and count >= 1 and address + count <= _R.READ_COUNT):
            raise ValueError(f"the V2L line protocol has fields 0..{_R.READ_COUNT - 1} only")
        payload = await self._exchange(v2l_line.READ, unit_id, address)
        try:
            raw = v2l_line.parse_reading(payload)
        except v2l_line.LineReplyError as exc:
            raise self._bad_reply(unit_id, address, str(exc)) from None
        return raw[address : address + count]

    async def write(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        values = list(values)
        if address != _R.ENABLE or len(values) != 1 or values[0] not in (0, 1):
            raise ValueError("the V2L line protocol writes only ENABLE (0 or 1)")
        payload = await self._exchange(v2l_line.enable_request(values[0] == 1), unit_id, address)
        if payload != v2l_line.OK:
            raise self._bad_reply(unit_id, address, f"expected OK, got {payload[:40]!r}")

    async def close(self) -> None:
        await self.line.close()

    async def _exchange(self, request: bytes, unit_id: int, address: int) -> str:
        reply = await self.line.exchange(request)
        where = describe_endpoint(self.endpoint, unit_id)
        asked = request.strip().decode("ascii")
        try:
            payload = v2l_line.unframe(reply)
        except v2l_line.LineFrameError as exc:
            raise BadFrame(
                f"{where}: {asked}: {exc}", endpoint=self.endpoint, unit_id=unit_id, address=address
            ) from None
        try:
            code = v2l_line.parse_error_code(payload)
        except v2l_line.LineReplyError as exc:
            raise self._bad_reply(unit_id, address, str(exc)) from None
        if code is not None:
            name = DeviceExceptionResponse.code_name(code)
            raise DeviceExceptionResponse(
                f"{where}: {asked}: device error {code} ({name})",
                code=code,
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )
        return payload

    def _bad_reply(self, unit_id: int, address: int, problem: str) -> BadReply:
        where = describe_endpoint(self.endpoint, unit_id)
        return BadReply(
            f"{where}: {problem}", endpoint=self.endpoint, unit_id=unit_id, address=address
        )


class V2LSerialDriver(V2LOutletDriver):
    """Implements `resilience.devices.V2LOutlet` over the line protocol.

    Built on a `LineTransport` (`resilience.transport.serial.SerialLine`); given a
    plain `RegisterTransport` instead (a drill's in-process register bank, which
    holds the same eight registers), it reads that directly.
    """

    @classmethod
    def on_line(
        cls, line: LineTransport, *, name: str, rating_w: float | None = None
    ) -> V2LSerialDriver:
        return cls(V2LLineRegisters(line), 1, name=name, rating_w=rating_w)
