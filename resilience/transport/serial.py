"""A serial port that speaks a request/reply line protocol (not Modbus), over pyserial.

Some field devices have no Modbus: a V2L adapter meter or a relay board that
answers ASCII lines. `SerialLine` is their transport: one port, one exchange
at a time (a lock), each exchange a request written whole and one reply line
read back until its terminator (``\\n``), bounded by `timeout_s`.

- The port is opened lazily, exclusively, non-blocking; reads are driven by the
  event loop (``add_reader`` on the port's file descriptor), so a slow device
  never blocks the control loop.
- Anything left in the input buffer before a request (a late answer to an
  earlier one) is discarded, so a reply always belongs to its request.
- A port that cannot be opened is retried after a back-off (0.5 s doubling to
  5 s, on an injectable clock), like the Modbus buses; meanwhile every exchange
  raises `DeviceUnreachable` at once.
- Failures map onto `resilience.transport.errors`: no byte within the timeout is
  `DeviceTimeout`; bytes but no complete line is `BadFrame` (truncated); a reply
  longer than `max_reply_bytes` is `BadFrame`; a port that vanishes is
  `DeviceUnreachable`. Checking the content of a line is the driver's job.

Times in seconds [s].
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import serial

from resilience import rs485
from resilience.transport.errors import BadFrame, DeviceTimeout, DeviceUnreachable, TransportError

__all__ = ["LineTransport", "SerialLine"]


class LineTransport(Protocol):
    """One request line in, one reply line out: all a line-protocol driver needs."""

    @property
    def endpoint(self) -> str: ...

    async def exchange(self, request: bytes) -> bytes:
        """Send `request` and return the reply line, terminator included."""
        ...

    async def close(self) -> None: ...


class SerialLine:
    """A line-protocol device on `serial_port` (see the module docstring)."""

    def __init__(
        self,
        serial_port: str,
        *,
        baudrate: int = 9600,
        parity: rs485.Parity = "N",
        stopbits: int = 1,
        timeout_s: float,
        terminator: bytes = b"\n",
        max_reply_bytes: int = 256,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, not {timeout_s}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity: rs485.Parity = parity
        self.stopbits = stopbits
        self.timeout_s = timeout_s
        self.terminator = terminator
        self.max_reply_bytes = max_reply_bytes
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_initial_s
        self._retry_at: float | None = None
        self._clock = clock
        self._lock = asyncio.Lock()
        self._port: Any = None  # an open serial.Serial, or None
        self._buffer = bytearray()
        self._line: asyncio.Future[bytes] | None = None
        self._lost: BaseException | None = None

    @property
    def endpoint(self) -> str:
        return self.serial_port

    @property
    def connected(self) -> bool:
        return self._port is not None

    def __repr__(self) -> str:
        return (
            f"SerialLine({self.serial_port}, {self.baudrate} 8{self.parity}{self.stopbits},"
            f" timeout_s={self.timeout_s})"
        )

    async def exchange(self, request: bytes) -> bytes:
        """Write `request`, return the reply line (see the module docstring for failures)."""
        what = f"{self.serial_port}: {request.strip().decode('ascii', 'replace')!r}"
        async with self._lock:
            port = self._open(what)
            loop = asyncio.get_running_loop()
            self._buffer.clear()
            with contextlib.suppress(serial.SerialException, OSError):
                port.reset_input_buffer()
            self._line = loop.create_future()
            try:
                written = port.write(request)
                if written is not None and written < len(request):
                    raise OSError(f"only {written} of {len(request)} bytes written")
                return await asyncio.wait_for(asyncio.shield(self._line), self.timeout_s)
            except TimeoutError:
                got = bytes(self._buffer)
                if got:
                    raise BadFrame(
                        f"{what}: truncated reply, {len(got)} bytes and no line end within"
                        f" {self.timeout_s} s ({got[:40]!r})",
                        endpoint=self.serial_port,
                    ) from None
                raise DeviceTimeout(
                    f"{what}: no answer within {self.timeout_s} s", endpoint=self.serial_port
                ) from None
            except TransportError:
                raise
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise DeviceUnreachable(
                    f"{what}: serial port lost ({exc})", endpoint=self.serial_port
                ) from None
            finally:
                line, self._line = self._line, None
                if line is not None and not line.done():
                    line.cancel()

    async def close(self) -> None:
        """Close the port; the next exchange opens it again (no back-off)."""
        async with self._lock:
            self._drop()
            self._retry_at = None
            self._backoff_s = self._backoff_initial_s

    # ------------------------------------------------------------------ internals
    def _open(self, what: str) -> Any:
        if self._port is not None:
            if self._lost is None:
                return self._port
            self._drop()
        now = self._clock()
        if self._retry_at is not None and now < self._retry_at:
            raise DeviceUnreachable(
                f"{what}: not open; the last attempt failed, next in {self._retry_at - now:.1f} s",
                endpoint=self.serial_port,
            )
        try:
            port = serial.serial_for_url(
                self.serial_port,
                baudrate=self.baudrate,
                bytesize=8,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=0,
                write_timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            delay = self._backoff_s
            self._retry_at = now + delay
            self._backoff_s = min(2 * delay, self._backoff_max_s)
            raise DeviceUnreachable(
                f"{what}: cannot open the serial port ({exc}); next attempt in {delay:.1f} s",
                endpoint=self.serial_port,
            ) from None
        self._retry_at = None
        self._backoff_s = self._backoff_initial_s
        self._lost = None
        asyncio.get_running_loop().add_reader(port.fileno(), self._readable)
        self._port = port
        return port

    def _readable(self) -> None:
        port = self._port
        if port is None:
            return
        try:
            data = port.read(4096)
        except (serial.SerialException, OSError) as exc:
            self._lost = exc
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(port.fileno())
            if self._line is not None and not self._line.done():
                self._line.set_exception(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return
        if not data or self._line is None or self._line.done():
            return  # nobody asked: a late or unsolicited line, dropped
        self._buffer += data
        end = self._buffer.find(self.terminator)
        if end >= 0:
            self._line.set_result(bytes(self._buffer[: end + len(self.terminator)]))
        elif len(self._buffer) > self.max_reply_bytes:
            self._line.set_exception(
                BadFrame(
                    f"{self.serial_port}: reply over {self.max_reply_bytes} bytes without a line"
                    f" end ({bytes(self._buffer[:40])!r})",
                    endpoint=self.serial_port,
                )
            )

    def _drop(self) -> None:
        port, self._port = self._port, None
        self._lost = None
        if port is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(port.fileno())
        with contextlib.suppress(Exception):
            port.close()
