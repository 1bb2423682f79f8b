"""Modbus TCP: the register transport drivers talk through, and one bus per endpoint.

Drivers depend only on the `RegisterTransport` Protocol (read and write holding
registers of one unit id), so a drill can hand them an in-process transport that
reads simulated register banks directly; only the Modbus framing is skipped.

`ModbusTcpBus` is the real one, over `resilience.transport.tcp_link.TcpLink` (pymodbus's
PDUs and framing, without its client's transaction machinery; see that module):

- one bus per ``host:port``, shared by every device behind it (gateways put
  several unit ids behind one socket), with one request in flight at a time;
- it connects lazily, on the first request;
- when a connect fails it does not retry on every cycle: it backs off (0.5 s
  doubling to 5 s by default, measured on an injectable clock) and meanwhile
  raises `DeviceUnreachable` at once, so a dead device costs the cycle nothing;
- pymodbus's own background reconnect task is switched off
  (``reconnect_delay=0``): the bus alone decides when to connect;
- every pymodbus outcome becomes one of `resilience.transport.errors`;
- it logs nothing per request (pymodbus already logs timeouts, and the cycle
  logs a device's failure once and its recovery once).

Addresses are zero-based PDU addresses; values are raw unsigned 16-bit registers.
Times are in seconds [s].
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from resilience.transport.errors import (
    BadFrame,
    DeviceExceptionResponse,
    DeviceTimeout,
    DeviceUnreachable,
    TransportError,
)
from resilience.transport.tcp_link import TcpLink

if TYPE_CHECKING:
    from resilience.rs485 import Parity
    from resilience.transport.rtu import ModbusRtuBus
    from resilience.transport.serial import SerialLine

__all__ = [
    "MAX_READ_COUNT",
    "MAX_WRITE_COUNT",
    "BusPool",
    "ModbusBus",
    "ModbusTcpBus",
    "RegisterTransport",
    "check_request",
    "check_write",
]

MAX_READ_COUNT = 125
"""Most holding registers one FC3 request may read (Modbus application protocol 6.3)."""
MAX_WRITE_COUNT = 123
"""Most registers one FC16 request may write (Modbus application protocol 6.12)."""

_FC_READ_HOLDING = 3
_FC_WRITE_SINGLE = 6
_FC_WRITE_MULTIPLE = 16


class RegisterTransport(Protocol):
    """Holding registers of the units behind one endpoint: all a driver needs.

    Implementations raise `resilience.transport.errors.TransportError` subclasses
    and nothing else for device trouble (`ValueError` for a request that can never
    be valid, such as 200 registers at once). An implementation may also offer an
    ``endpoint: str`` attribute (``host:port``, or a name for an in-process bank):
    drivers put it in their error messages, and fall back to the class name.
    """

    async def read(self, unit_id: int, address: int, count: int) -> list[int]:
        """Exactly `count` registers starting at `address`."""
        ...

    async def write(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        """`values` into consecutive registers from `address`, in one request."""
        ...

    async def close(self) -> None: ...


def check_request(address: int, count: int, limit: int) -> None:
    """ValueError for a request no device could ever answer (the in-process transport too)."""
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"register address {address} is outside 0..65535")
    if not 1 <= count <= limit:
        raise ValueError(f"{count} registers in one request (1..{limit} allowed)")
    if address + count > 0x10000:
        raise ValueError(f"{count} registers from {address} run past address 65535")


def check_write(address: int, values: Sequence[int]) -> None:
    """ValueError for a write no device could take: too many registers, or a value that
    does not fit 16 bits."""
    check_request(address, len(values), MAX_WRITE_COUNT)
    for value in values:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{value} does not fit an unsigned 16-bit register")


class ModbusBus:
    """What every pymodbus-backed bus shares: one client, one request at a time, back-off.

    Subclasses say how to build the client (`_new_client`) and how to name the
    endpoint; `ModbusTcpBus` and `resilience.transport.rtu.ModbusRtuBus` are the two.

    `timeout_s` [s] bounds a connect and each request's answer; it is applied at
    the next connect when changed. `backoff_initial_s` and `backoff_max_s` [s]
    set how long the bus waits after a failed connect before trying again
    (doubling each time). `clock` returns seconds and is only compared with
    itself; tests inject one to skip the back-off without sleeping.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError(
                f"need 0 < backoff_initial_s <= backoff_max_s, got {backoff_initial_s}"
                f" and {backoff_max_s}"
            )
        self.timeout_s = timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._client: Any = None  # a connected client (a `TcpLink`, pymodbus's serial one), or None
        self._backoff_s = backoff_initial_s
        self._retry_at: float | None = None  # no connect attempt before this clock time

    @property
    def endpoint(self) -> str:
        """How error messages name the bus (``host:port``, or the serial port)."""
        raise NotImplementedError

    def _new_client(self) -> Any:
        """A fresh, unconnected pymodbus client with retries and reconnection switched off."""
        raise NotImplementedError

    def _connect_failed_reason(self) -> str:
        return f"cannot connect (refused, or no answer within {self.timeout_s} s)"

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    @property
    def retry_at(self) -> float | None:
        """Clock time before which no connect is attempted (None: not backing off)."""
        return self._retry_at

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint}, timeout_s={self.timeout_s})"

    async def read(self, unit_id: int, address: int, count: int) -> list[int]:
        """FC3: exactly `count` holding registers from `address` of unit `unit_id`."""
        check_request(address, count, MAX_READ_COUNT)
        what = f"reading {count} registers at {address}"
        result = await self._execute(unit_id, address, what, _FC_READ_HOLDING, count=count)
        registers = getattr(result, "registers", None)
        if not isinstance(registers, list) or len(registers) != count:
            got = "none" if not isinstance(registers, list) else str(len(registers))
            raise BadFrame(
                f"{self._where(unit_id)}: {what}: the reply holds {got} registers",
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )
        return [int(r) for r in registers]

    async def write(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        """FC6 for one value, FC16 for several: all of `values` in one request."""
        values = list(values)
        check_write(address, values)
        if len(values) == 1:
            what = f"writing {values[0]} to register {address}"
            result = await self._execute(unit_id, address, what, _FC_WRITE_SINGLE, values=values)
            echo_ok = (
                getattr(result, "address", None) == address
                and list(getattr(result, "registers", [])) == values
            )
        else:
            what = f"writing {len(values)} registers at {address}"
            result = await self._execute(unit_id, address, what, _FC_WRITE_MULTIPLE, values=values)
            echo_ok = getattr(result, "address", None) == address and getattr(
                result, "count", None
            ) == len(values)
        if not echo_ok:
            raise BadFrame(
                f"{self._where(unit_id)}: {what}: the reply does not echo the request",
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )

    async def close(self) -> None:
        """Drop the connection; the next request connects again (no back-off)."""
        async with self._lock:
            self._drop()
            self._retry_at = None
            self._backoff_s = self._backoff_initial_s

    # ------------------------------------------------------------------ internals
    def _where(self, unit_id: int) -> str:
        return f"{self.endpoint} unit {unit_id}"

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connect(self, unit_id: int, address: int, what: str) -> Any:
        """The connected client; connects when allowed, else DeviceUnreachable."""
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        now = self._clock()
        if self._retry_at is not None and now < self._retry_at:
            raise DeviceUnreachable(
                f"{self._where(unit_id)}: {what}: not connected; the last connect failed,"
                f" next attempt in {self._retry_at - now:.1f} s",
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )
        client = self._new_client()
        try:
            connected = await client.connect()
        except BaseException:
            client.close()
            raise
        if not connected:
            client.close()
            delay = self._backoff_s
            self._retry_at = now + delay
            self._backoff_s = min(2 * delay, self._backoff_max_s)
            raise DeviceUnreachable(
                f"{self._where(unit_id)}: {what}: {self._connect_failed_reason()};"
                f" next attempt in {delay:.1f} s",
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )
        self._retry_at = None
        self._backoff_s = self._backoff_initial_s
        self._client = client
        return client

    async def _before_request(self) -> None:
        """Called under the lock just before a request goes out (RTU keeps its gap here)."""

    def _after_request(self) -> None:
        """Called under the lock once a request is answered or given up."""

    def _unusable_reply(self, function_code: int, count: int) -> str | None:
        """After a timeout: why the bytes that did arrive were no reply, or None if none came."""
        return None

    async def _execute(
        self,
        unit_id: int,
        address: int,
        what: str,
        function_code: int,
        *,
        count: int = 0,
        values: Sequence[int] = (),
    ) -> Any:
        where = self._where(unit_id)

        def fail(kind: type[TransportError], reason: str) -> TransportError:
            return kind(
                f"{where}: {what}: {reason}",
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )

        async with self._lock:
            client = await self._connect(unit_id, address, what)
            await self._before_request()
            try:
                if function_code == _FC_READ_HOLDING:
                    result = await client.read_holding_registers(
                        address, count=count, device_id=unit_id
                    )
                elif function_code == _FC_WRITE_SINGLE:
                    result = await client.write_register(address, values[0], device_id=unit_id)
                else:
                    result = await client.write_registers(address, values, device_id=unit_id)
            except ConnectionException as exc:
                self._drop()
                raise fail(DeviceUnreachable, f"connection lost ({exc.string})") from None
            except ModbusIOException:
                # pymodbus raises this when no answer came within the timeout (and
                # closes the connection itself after a few in a row).
                garbled = self._unusable_reply(function_code, count)
                if garbled is not None:
                    raise fail(BadFrame, garbled) from None
                raise fail(DeviceTimeout, f"no answer within {self.timeout_s} s") from None
            except ModbusException as exc:
                raise fail(BadFrame, f"unusable reply ({exc})") from None
            except OSError as exc:
                self._drop()
                raise fail(DeviceUnreachable, f"connection lost ({exc})") from None
            finally:
                self._after_request()
        if isinstance(result, ExceptionResponse):
            code = int(result.exception_code)
            name = DeviceExceptionResponse.code_name(code)
            raise DeviceExceptionResponse(
                f"{where}: {what}: Modbus exception {code} ({name})",
                code=code,
                endpoint=self.endpoint,
                unit_id=unit_id,
                address=address,
            )
        if result is None or result.isError():
            raise fail(BadFrame, f"error reply {result}")
        if int(getattr(result, "function_code", -1)) != function_code:
            raise fail(
                BadFrame,
                f"reply to function code {function_code} has function code"
                f" {getattr(result, 'function_code', None)}",
            )
        return result


RECV_BYTES = 4096
"""[bytes] the most one socket read takes in (a Modbus TCP frame is at most 260).

asyncio asks the socket for 256 KiB a read otherwise, a buffer allocated and shrunk for
every reply; with the unit's mmap threshold (deploy/resilience.service, for a steady
RSS) that is an mmap, a page fault, an mremap and an munmap per reply, 50 times a second
per fast device."""


class ModbusTcpBus(ModbusBus):
    """One Modbus TCP connection to ``host:port``, shared by the unit ids behind it.

    See `ModbusBus` for `timeout_s`, the back-off and `clock`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_s: float,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            timeout_s=timeout_s,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            clock=clock,
        )
        self.host = host
        self.port = port
        self._request_tid = b""  # the MBAP transaction id of the request last sent
        self._received = b""  # bytes received since then
        self._garbled = ""  # a reply that could not be decoded since then (shown), or ""

    @property
    def endpoint(self) -> str:
        """``host:port``, as error messages name it."""
        return f"{self.host}:{self.port}"

    def _new_client(self) -> TcpLink:
        return TcpLink(
            self.host,
            self.port,
            timeout_s=self.timeout_s,
            recv_bytes=RECV_BYTES,
            trace=self._trace,
            garbled=self._garbled_reply,
        )

    def _garbled_reply(self, data: bytes) -> None:
        """A reply that could not be decoded (shown in the error: `_unusable_reply`)."""
        shown = data[:16].hex(" ") + (" ..." if len(data) > 16 else "")
        self._garbled = f"unusable reply: {len(data)} bytes ({shown})"

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """The link shows us every frame sent and the bytes received since, as they grow."""
        if sending:
            self._request_tid, self._received, self._garbled = bytes(data[:2]), b"", ""
        else:
            self._received = bytes(data)
        return data

    def _unusable_reply(self, function_code: int, count: int) -> str | None:
        """Why the request got no usable answer although the device sent bytes: a reply
        that could not be decoded, or one of this transaction cut short (its MBAP length
        says more than came). A whole reply that came just too late, or a late reply to
        an earlier request (another transaction id), is no answer: a timeout (None)."""
        if self._garbled:
            return self._garbled
        got, tid = self._received, self._request_tid
        at = 0
        while len(got) - at >= 6:
            length = 6 + int.from_bytes(got[at + 4 : at + 6], "big")  # MBAP header + length
            if got[at : at + 2] == tid and len(got) - at < length:
                shown = got[at : at + 16].hex(" ") + (" ..." if len(got) - at > 16 else "")
                return f"truncated reply: {len(got) - at} of {length} bytes ({shown})"
            at += length
        return None


class BusPool:
    """One shared `ModbusTcpBus` per ``(host, port)``, one `ModbusRtuBus` per serial
    port, and one `SerialLine` per line-protocol serial port.

    Devices behind one endpoint share its connection and its lock. A bus is
    created with the first device's timeout; when a later device asks for a
    longer one, the bus uses the longest (the timeout bounds the whole bus, so
    the shortest would cut the slowest device off). The site-file check makes the
    line settings of every device on one serial port agree.
    """

    def __init__(
        self,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._buses: dict[tuple[str, int], ModbusTcpBus] = {}
        self._rtu: dict[str, ModbusRtuBus] = {}
        self._lines: dict[str, SerialLine] = {}

    def get(self, host: str, port: int, timeout_s: float) -> ModbusTcpBus:
        return _shared(
            self._buses,
            (host, port),
            timeout_s,
            lambda: ModbusTcpBus(host, port, timeout_s=timeout_s, **self._retry()),
        )

    def get_rtu(
        self,
        serial_port: str,
        *,
        baudrate: int,
        parity: Parity,
        stopbits: int,
        timeout_s: float,
    ) -> ModbusRtuBus:
        """The Modbus RTU bus of `serial_port` (one per port, shared by its unit ids)."""
        from resilience.transport.rtu import ModbusRtuBus

        return _shared(
            self._rtu,
            serial_port,
            timeout_s,
            lambda: ModbusRtuBus(
                serial_port,
                baudrate=baudrate,
                parity=parity,
                stopbits=stopbits,
                timeout_s=timeout_s,
                **self._retry(),
            ),
        )

    def get_line(
        self,
        serial_port: str,
        *,
        baudrate: int,
        parity: Parity,
        stopbits: int,
        timeout_s: float,
    ) -> SerialLine:
        """The line-protocol port `serial_port` (one device per port)."""
        from resilience.transport.serial import SerialLine

        return _shared(
            self._lines,
            serial_port,
            timeout_s,
            lambda: SerialLine(
                serial_port,
                baudrate=baudrate,
                parity=parity,
                stopbits=stopbits,
                timeout_s=timeout_s,
                **self._retry(),
            ),
        )

    def _retry(self) -> _Retry:
        return {
            "backoff_initial_s": self._backoff_initial_s,
            "backoff_max_s": self._backoff_max_s,
            "clock": self._clock,
        }

    @property
    def buses(self) -> tuple[ModbusTcpBus, ...]:
        """The Modbus TCP buses."""
        return tuple(self._buses.values())

    @property
    def serial_buses(self) -> tuple[ModbusRtuBus | SerialLine, ...]:
        """The Modbus RTU buses and line-protocol ports."""
        return (*self._rtu.values(), *self._lines.values())

    async def close_all(self) -> None:
        """Close every bus (they may be used again: each reconnects on demand)."""
        for bus in self._buses.values():
            await bus.close()
        for serial_bus in self.serial_buses:
            await serial_bus.close()


class _Retry(TypedDict):
    backoff_initial_s: float
    backoff_max_s: float
    clock: Callable[[], float]


class _HasTimeout(Protocol):
    timeout_s: float


_BusT = TypeVar("_BusT", bound=_HasTimeout)
_KeyT = TypeVar("_KeyT")


def _shared(
    cache: dict[_KeyT, _BusT], key: _KeyT, timeout_s: float, make: Callable[[], _BusT]
) -> _BusT:
    """One bus per endpoint; it keeps the longest timeout any of its devices asks for."""
    bus = cache.get(key)
    if bus is None:
        bus = cache[key] = make()
    elif timeout_s > bus.timeout_s:
        bus.timeout_s = timeout_s
    return bus
