"""RS-485 line timing: character time, inter-frame gap, frame and transaction times.

Pure arithmetic shared by the site-file checks (`resilience.config`: is a
device's timeout long enough for its frames at that baud rate? does one serial
line have time to read all its devices within a control cycle?), the Modbus RTU
bus (`resilience.transport.rtu`, which keeps the gap between frames) and the
simulated line (`firmware_sim.rtu`, which adds each frame's transmission time
because a pseudo-terminal ignores the baud rate).

A character on the wire is a start bit, the data bits, an optional parity bit
and the stop bits: 11 bits for Modbus RTU's 8E1 (or 8N2). Modbus over serial
line (V1.02, 2.5.1.1) asks for a silent interval of 3.5 character times between
frames, fixed at 1.750 ms above 19200 baud.

Units: seconds [s], baud [bit/s], bytes.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BAUD_RATES",
    "FIXED_GAP_ABOVE_BAUD",
    "READ_REQUEST_BYTES",
    "TURNAROUND_S",
    "Parity",
    "bits_per_char",
    "char_time_s",
    "frame_time_s",
    "inter_frame_gap_s",
    "read_reply_deadline_s",
    "read_response_bytes",
    "read_transaction_s",
]

Parity = Literal["N", "E", "O"]

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
"""The baud rates a site file may name (what RS-485 field devices offer)."""

FIXED_GAP_ABOVE_BAUD = 19200
"""Above this baud rate the inter-frame gap is a fixed 1.750 ms (Modbus serial line 2.5.1.1)."""

READ_REQUEST_BYTES = 8
"""An FC3 request: unit, function, address (2), count (2), CRC (2)."""

TURNAROUND_S = 0.005
"""[s] time a slave may take between the end of a request and its answer; on top of the
frames themselves when checking a timeout (field devices typically answer within 1-5 ms)."""


def bits_per_char(*, bytesize: int = 8, parity: Parity = "E", stopbits: int = 1) -> int:
    """Bits of one character on the wire: start + data + parity + stop."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def char_time_s(
    baudrate: int, *, bytesize: int = 8, parity: Parity = "E", stopbits: int = 1
) -> float:
    """[s] one character at `baudrate`."""
    if baudrate <= 0:
        raise ValueError(f"baud rate must be positive, not {baudrate}")
    return bits_per_char(bytesize=bytesize, parity=parity, stopbits=stopbits) / baudrate


def frame_time_s(
    n_bytes: int, baudrate: int, *, bytesize: int = 8, parity: Parity = "E", stopbits: int = 1
) -> float:
    """[s] to transmit a frame of `n_bytes` bytes."""
    return n_bytes * char_time_s(baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)


def inter_frame_gap_s(
    baudrate: int, *, bytesize: int = 8, parity: Parity = "E", stopbits: int = 1
) -> float:
    """[s] silence between two frames: 3.5 characters, or 1.750 ms above 19200 baud."""
    if baudrate > FIXED_GAP_ABOVE_BAUD:
        return 0.00175
    return 3.5 * char_time_s(baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)


def read_response_bytes(registers: int) -> int:
    """An FC3 reply: unit, function, byte count, 2 bytes a register, CRC (2)."""
    return 5 + 2 * registers


def read_reply_deadline_s(
    registers: int,
    baudrate: int,
    *,
    bytesize: int = 8,
    parity: Parity = "E",
    stopbits: int = 1,
    turnaround_s: float = TURNAROUND_S,
) -> float:
    """[s] from the start of a read request to the last byte of its reply: the least a
    timeout must allow (request and reply frames plus the slave's turnaround)."""
    frames = READ_REQUEST_BYTES + read_response_bytes(registers)
    char_s = char_time_s(baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
    return frames * char_s + turnaround_s


def read_transaction_s(
    registers: int,
    baudrate: int,
    *,
    bytesize: int = 8,
    parity: Parity = "E",
    stopbits: int = 1,
    turnaround_s: float = TURNAROUND_S,
) -> float:
    """[s] one read of `registers` holding registers, request to the end of the reply,
    plus the inter-frame gap before the next request may start."""
    frames = READ_REQUEST_BYTES + read_response_bytes(registers)
    char_s = char_time_s(baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
    gap_s = inter_frame_gap_s(baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
    return frames * char_s + turnaround_s + gap_s
