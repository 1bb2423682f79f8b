"""One Modbus TCP connection, one transaction at a time: the request path of `ModbusTcpBus`.

pymodbus's `AsyncModbusTcpClient` runs every request through a transaction manager
built for many uses (retries, reconnection, several framers, a `wait_for` task and
timer per request, packet tracing). The grid meter and the PCC breaker are asked 50
times a second, every cycle, and on a gateway that machinery was most of the read
phase's CPU (README "Footprint"). This link keeps only what a bus that sends one
request at a time needs: a socket, the MBAP framing, and one pending reply with one
timer. The Modbus itself stays pymodbus's: requests are its PDU classes, framed by its
`FramerSocket` (a read request framed once, then sent again under each new transaction
id), and replies are decoded by the response classes its `DecodePDU` names for their
function codes, so what is sent and how a reply is read are exactly as before.

The link speaks the part of the client's interface `ModbusBus` uses (`connect`,
`connected`, `close`, `read_holding_registers`, `write_register`, `write_registers`)
and fails the way the client did: `ConnectionException` for a lost or absent
connection, `ModbusIOException` for no usable answer within the timeout (the bus then
asks `_unusable_reply` why), so the bus maps outcomes to `resilience.transport.errors`
unchanged.

Replies are matched by transaction id and unit id; a frame under another transaction
id (a late reply to an earlier request) is dropped, as pymodbus does. A frame of this
transaction that cannot be decoded fails the request at once (no wait for the timeout)
and the connection is kept: the MBAP length keeps the stream in step. A session that
leaves `TIMEOUTS_BEFORE_RECONNECT` requests in a row without a byte of answer is dropped,
so the next request connects afresh.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Sequence

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

__all__ = ["MBAP_HEADER", "TcpLink"]

MBAP_HEADER = 6
"""[bytes] transaction id, protocol id and length: what precedes the length's bytes."""
MAX_MBAP_LENGTH = 254
"""The largest length field of a Modbus TCP frame (a unit id and a PDU of at most 253
bytes: 260 bytes on the wire)."""
TIMEOUTS_BEFORE_RECONNECT = 5
"""Unanswered requests in a row after which the connection is dropped, so the next
request connects afresh (as pymodbus's client did with no retries): a half-open TCP
session (a gateway rebooted without a reset, a switch that lost its state) never
answers again, and TCP alone would take many minutes to notice."""
MAX_CACHED_READS = 64
"""Framed read requests a link keeps (a device reads a handful of blocks)."""
_DECODER = DecodePDU(is_server=False)
_RESPONSES: dict[int, type[ModbusPDU]] = {
    code: _DECODER.pdu_table[code][_DECODER.pdu_inx]
    for code in (
        ReadHoldingRegistersRequest.function_code,
        WriteSingleRegisterRequest.function_code,
        WriteMultipleRegistersRequest.function_code,
    )
}
"""pymodbus's response class for each function code the link sends."""


def _decoded(pdu: bytes) -> ModbusPDU | None:
    """A reply's PDU decoded by pymodbus's response class for its function code, or None
    if it cannot be; `DecodePDU.decode` without its debug line, which formats every
    reply whatever the log level (with it, about 4 % of the controller's CPU samples on
    the grid, py-spy)."""
    try:
        code = pdu[0]
        if code > 0x80:
            exception = ExceptionResponse(code & 0x7F)
            exception.decode(pdu[1:])
            return exception
        response = _RESPONSES.get(code)
        if response is None:
            return _DECODER.decode(pdu)  # another function's reply: named by the bus
        decoded = response()
        decoded.decode(pdu[1:])
        return decoded
    except (ModbusException, ValueError, IndexError, struct.error):
        return None


class TcpLink(asyncio.Protocol):
    """A Modbus TCP client connection to ``host:port``.

    `timeout_s` bounds the connect and each reply. `recv_bytes` caps one socket read.
    `trace(sending, data)` is shown every frame sent and the bytes received since
    (the bus keeps them to name a reply that came garbled or cut short); `garbled(text)`
    is told why a reply of this transaction could not be decoded.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float,
        recv_bytes: int,
        trace: Callable[[bool, bytes], bytes],
        garbled: Callable[[bytes], None],
    ) -> None:
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self._recv_bytes = recv_bytes
        self._trace = trace
        self._garbled = garbled
        self._framer = FramerSocket(_DECODER)
        self._reads: dict[tuple[int, int, int], bytes] = {}  # framed, by (address, count, unit)
        self._transport: asyncio.Transport | None = None
        self._tid = 0
        self._unit = 0
        self._reply: asyncio.Future[ModbusPDU] | None = None
        self._buffer = b""  # bytes not yet a whole frame
        self._received = b""  # every byte since the last request (for `trace`)
        self._unanswered = 0  # requests in a row with no reply at all

    # ------------------------------------------------------------ the client's interface
    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> bool:
        """True once connected; False if refused or not connected within the timeout."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: self, self.host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError):
            self.close()
            return False
        return self.connected

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._fail(ConnectionException("connection closed"))

    async def read_holding_registers(
        self, address: int, *, count: int, device_id: int
    ) -> ModbusPDU:
        key = (address, count, device_id)
        frame = self._reads.get(key)
        if frame is None:
            # framed by pymodbus once (transaction id 0), then only the id changes: the
            # grid meter's and the breaker's same request, fifty times a second
            request = ReadHoldingRegistersRequest(address=address, count=count, dev_id=device_id)
            frame = self._framer.buildFrame(request)
            if len(self._reads) >= MAX_CACHED_READS:
                self._reads.clear()
            self._reads[key] = frame
        return await self._send(frame, device_id)

    async def write_register(self, address: int, value: int, *, device_id: int) -> ModbusPDU:
        request = WriteSingleRegisterRequest(address=address, registers=[value], dev_id=device_id)
        return await self._execute(request)

    async def write_registers(
        self, address: int, values: Sequence[int], *, device_id: int
    ) -> ModbusPDU:
        request = WriteMultipleRegistersRequest(
            address=address, registers=list(values), dev_id=device_id
        )
        return await self._execute(request)

    # ------------------------------------------------------------------ a transaction
    async def _execute(self, request: ModbusPDU) -> ModbusPDU:
        request.transaction_id = 0
        return await self._send(self._framer.buildFrame(request), request.dev_id)

    async def _send(self, framed: bytes, unit: int) -> ModbusPDU:
        """Send `framed` (a whole frame; its transaction id is set here) and await the
        reply of this transaction."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionException(f"{self.host}:{self.port}: not connected")
        if self._reply is not None:
            raise RuntimeError("one request at a time (the bus holds its lock)")
        self._tid = self._tid % 0xFFFF + 1
        self._unit = unit
        frame = self._tid.to_bytes(2, "big") + framed[2:]
        loop = asyncio.get_running_loop()
        self._reply = reply = loop.create_future()
        self._received = b""
        self._trace(True, frame)
        timer = loop.call_later(self.timeout_s, self._time_out, reply)
        try:
            transport.write(frame)
            pdu: ModbusPDU = await reply
            return pdu
        finally:
            timer.cancel()
            if self._reply is reply:
                self._reply = None

    def _time_out(self, reply: asyncio.Future[ModbusPDU]) -> None:
        if reply.done():
            return
        reply.set_exception(ModbusIOException(f"no answer within {self.timeout_s} s"))
        if not self._received:
            self._unanswered += 1
        if self._unanswered >= TIMEOUTS_BEFORE_RECONNECT and self._transport is not None:
            self._transport.close()  # `connection_lost` follows; the next request connects

    def _fail(self, exc: Exception) -> None:
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_exception(exc)

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer = b""
        self._unanswered = 0
        # asyncio asks the socket for 256 KiB a read otherwise (see `ModbusTcpBus`)
        if hasattr(transport, "max_size"):
            transport.max_size = self._recv_bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(ConnectionException(f"connection lost ({exc or 'closed by the device'})"))

    def data_received(self, data: bytes) -> None:
        self._received += data
        self._trace(False, self._received)
        buffer = self._buffer + data
        while len(buffer) >= MBAP_HEADER + 2:  # the header, the unit id, a function code
            length = MBAP_HEADER + int.from_bytes(buffer[4:6], "big")
            if buffer[2:4] != b"\x00\x00" or not 2 <= length - MBAP_HEADER <= MAX_MBAP_LENGTH:
                # not Modbus (its protocol id, or a length no frame has): nothing after it
                # can be framed either (waiting for a length of 65 535 would swallow every
                # reply after it); the request fails at once, named
                self._garbled(buffer)
                buffer = b""
                self._fail(ModbusIOException("unusable reply"))
                break
            if len(buffer) < length:
                break  # the rest is still on its way
            frame, buffer = buffer[:length], buffer[length:]
            self._take(frame)
        self._buffer = buffer

    def _take(self, frame: bytes) -> None:
        reply = self._reply
        tid = int.from_bytes(frame[0:2], "big")
        other_unit = self._unit != 0 and frame[6] != self._unit
        if reply is None or reply.done() or tid != self._tid or other_unit:
            return  # a late reply to an earlier request, or another unit's: no answer
        pdu = _decoded(frame[MBAP_HEADER + 1 :])
        if pdu is None:
            self._garbled(frame)
            self._fail(ModbusIOException("unusable reply"))
            return
        pdu.dev_id, pdu.transaction_id = frame[6], tid
        self._unanswered = 0
        reply.set_result(pdu)
