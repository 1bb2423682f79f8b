"""Simulated RS-485 lines: Modbus RTU slaves on a pseudo-terminal, several unit ids per line.

One `RtuLine` is one RS-485 line: a pymodbus `ModbusSerialServer` with the RTU
framer on one pty path, serving every simulated device of the site file on
that serial port under its own unit id (a pymodbus `SimDevice` each), answering
from the device's register bank like the TCP servers (`server.py`) do.

A test makes the line with socat, two linked ptys: the controller opens one
end (the site file's ``serial_port``), the line serves the other::

    socat -d -d pty,raw,echo=0,link=/tmp/x/ctl pty,raw,echo=0,link=/tmp/x/sim

A pty moves bytes at once whatever the baud rate, so the line adds the
transmission time itself: every answer waits for the request's and the reply's
frame time at the configured baud rate (`resilience.rs485`), as on the wire,
and before that the slave's own turnaround, its response latency
(`firmware_sim.latency`, per device). The devices share the line: requests are
answered one at a time (`firmware_sim.replies`), so a slow slave delays those behind it.
A pty also refuses a parity setting (tcsetattr fails with EINVAL), so this side
opens it 8N1 whatever the line's settings; the controller's side must use a
parity-less setting too (8N2 is the Modbus serial-line equivalent of 8E1: 11 bits).

Faults (`Plant` comm faults) are acted out on the wire: silence never answers;
an exception code answers with it; garbage is impossible values in a sound frame;
corrupt flips the CRC of every frame the device sends; truncate cuts it short.
Units: seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType

from firmware_sim.devices import SimulatedDevice
from firmware_sim.latency import DeviceLatency, reply_delay_s
from firmware_sim.replies import EndpointReplies, RepliesSerialServer, RequestLost
from firmware_sim.units import Action, answer_known_units_only, sim_devices
from resilience import rs485

log = logging.getLogger(__name__)

__all__ = ["RtuLine"]

HOLDING_REGISTER_FUNCTIONS = frozenset({3, 6, 16})  # read, write single, write multiple
_EXCEPTION_REPLY_BYTES = 5  # unit, function | 0x80, code, CRC


def _request_bytes(function_code: int, count: int) -> int:
    if function_code == 16:
        return 9 + 2 * count  # unit, fc, address, count, byte count, data, CRC
    return 8  # FC3 and FC6: unit, fc, two 16-bit fields, CRC


def _reply_bytes(function_code: int, count: int) -> int:
    if function_code == 3:
        return rs485.read_response_bytes(count)
    return 8  # FC6 echo, FC16 address and count


class RtuLine:
    """Simulated slaves on one serial line (see the module docstring).

    `path` is the pty this side serves (the other end of the controller's serial
    port); `devices` must have distinct unit ids; `latencies` (device id ->
    `DeviceLatency`) is each slave's turnaround (none: it answers at once).
    """

    def __init__(
        self,
        path: str,
        devices: Sequence[SimulatedDevice],
        *,
        baudrate: int = 19200,
        parity: rs485.Parity = "E",
        stopbits: int = 1,
        latencies: Mapping[str, DeviceLatency] | None = None,
    ) -> None:
        units = [d.unit_id for d in devices]
        if len(set(units)) != len(units):
            raise ValueError(f"{path}: two simulated devices share a unit id ({units})")
        self.path = path
        self.devices = {d.unit_id: d for d in devices}
        self.baudrate = baudrate
        self.parity: rs485.Parity = parity
        self.stopbits = stopbits
        self.char_s = rs485.char_time_s(baudrate, parity=parity, stopbits=stopbits)
        self.frames_sent = 0
        self.latencies = dict(latencies or {})
        self._server: RepliesSerialServer | None = None
        self._replies: EndpointReplies | None = None

    async def start(self) -> None:
        sims = sim_devices(self.devices, self._action_for)
        # A pty refuses parity settings (EINVAL) and ignores the rest: open it 8N1, and
        # time the frames with the line's real settings (self.char_s).
        self._replies = EndpointReplies(self._delay_s)
        server = RepliesSerialServer(
            sims,
            replies=self._replies,
            framer=FramerType.RTU,
            port=self.path,
            baudrate=self.baudrate,
            parity="N",
            stopbits=1,
            ignore_missing_devices=True,  # an absent unit id is silent on RS-485
            trace_packet=self._trace,
        )
        answer_known_units_only(server, sims)  # (pymodbus would answer it with exception 4)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise OSError(f"rtu line {self.path}: cannot open ({exc})") from None
        self._server = server

    async def stop(self) -> None:
        if self._replies is not None:
            await self._replies.close()
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]

    def _delay_s(self, unit: int) -> float:
        """[s] the turnaround of the slave at `unit` (none for a silent or absent one)."""
        return reply_delay_s(self.devices, self.latencies, unit)

    # ------------------------------------------------------------------ the wire
    def _trace(self, sending: bool, data: bytes) -> bytes:
        """Act out corrupt and truncate on frames this line sends."""
        if not sending or not data:
            return data
        self.frames_sent += 1
        device = self.devices.get(data[0])
        fault = None if device is None else device.plant.comm_fault(device.device_id)
        if fault is None:
            return data
        if fault.kind == "corrupt":
            return data[:-1] + bytes([data[-1] ^ 0x5A])
        if fault.kind == "truncate":
            return data[: max(1, len(data) - 3)]
        return data

    def _action_for(self, device: SimulatedDevice) -> Action:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            # pymodbus reads a written register back to build the FC6 reply: no new frame.
            readback = set_values is None and function_code != 3
            if device.silent and not readback:
                raise RequestLost(device.device_id)
            result: ExcCodes | None = None
            if function_code not in HOLDING_REGISTER_FUNCTIONS:
                result = ExcCodes.ILLEGAL_FUNCTION
            elif set_values is None:
                read = device.read(address, count)
                if isinstance(read, ExcCodes):
                    result = read
                else:
                    offset = address - start_address
                    registers[offset : offset + count] = read
            else:
                result = device.write(address, [int(v) for v in set_values])
            if not readback:
                reply = _EXCEPTION_REPLY_BYTES if result else _reply_bytes(function_code, count)
                await asyncio.sleep((_request_bytes(function_code, count) + reply) * self.char_s)
            return result

        return action
