"""The V2L adapter meter's ASCII line protocol: framing, checksum, and the READ reply.

Shared by the driver (`resilience.drivers.v2l_serial`) and the simulated meter
(`firmware_sim.serial_line`), so both ends use one definition; people read
docs/serial-line-protocol.md. Pure: no I/O.

A reply line is ``<payload>*<XX>\\r\\n`` where XX is the XOR of every payload byte,
two upper-case hex digits (as NMEA 0183 does). Requests carry no checksum:

    READ\\r\\n      -> V2L,<state>,<soc_x10>,<power_w>,<rating_w>,<volt_x10>,<cutoff_x10>,
                     <cap_wh_div10>,<enabled>*XX\\r\\n
    EN,1\\r\\n      -> OK*XX\\r\\n          (EN,0 opens the contactor, and resets a trip)
    anything bad  -> ERR,<code>*XX\\r\\n    (code as a Modbus exception: 1 unknown command,
                                          3 bad value, 4 device failure, 6 busy)

The eight READ fields are, in order, exactly the registers of the Modbus V2L
adapter (`registers.V2LOutlet` 0..7), so both adapters share one decoder. Each
is an unsigned integer 0..65535.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ENABLE_PREFIX",
    "ERROR_PREFIX",
    "FIELDS",
    "MAX_LINE_BYTES",
    "OK",
    "READ",
    "READING_PREFIX",
    "LineFrameError",
    "LineReplyError",
    "checksum",
    "enable_request",
    "format_reading",
    "frame",
    "parse_error_code",
    "parse_reading",
    "unframe",
]

READ: Final = b"READ\r\n"
ENABLE_PREFIX: Final = "EN"
READING_PREFIX: Final = "V2L"
OK: Final = "OK"
ERROR_PREFIX: Final = "ERR"
FIELDS: Final = (
    "state",
    "soc_x10",
    "power_w",
    "rating_w",
    "volt_x10",
    "cutoff_x10",
    "cap_wh_div10",
    "enabled",
)
MAX_LINE_BYTES: Final = 64
"""The longest reply line: V2L, eight 5-digit fields, the separators, *XX and CR LF (60)."""


class LineFrameError(ValueError):
    """The line is not a frame: no terminator, no checksum, or the checksum is wrong."""


class LineReplyError(ValueError):
    """A well-framed line that is not the reply asked for, or has impossible fields."""


def checksum(payload: bytes) -> int:
    """XOR of every byte of `payload`."""
    value = 0
    for byte in payload:
        value ^= byte
    return value


def frame(payload: str) -> bytes:
    """``payload*XX\\r\\n``."""
    raw = payload.encode("ascii")
    return raw + b"*" + f"{checksum(raw):02X}".encode("ascii") + b"\r\n"


def enable_request(on: bool) -> bytes:
    return f"{ENABLE_PREFIX},{1 if on else 0}\r\n".encode("ascii")


def unframe(line: bytes) -> str:
    """The payload of a reply line; `LineFrameError` when it is not a sound frame."""
    if not line.endswith(b"\r\n"):
        raise LineFrameError(f"no CR LF at the end of {line[:MAX_LINE_BYTES]!r}")
    body = line[:-2]
    star = body.rfind(b"*")
    if star < 0 or len(body) - star != 3:
        raise LineFrameError(f"no *XX checksum in {line[:MAX_LINE_BYTES]!r}")
    payload, digits = body[:star], body[star + 1 :]
    try:
        stated = int(digits.decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        raise LineFrameError(f"checksum {digits!r} is not two hex digits") from None
    actual = checksum(payload)
    if stated != actual:
        raise LineFrameError(
            f"checksum mismatch: line says {stated:02X}, payload gives {actual:02X}"
            f" ({line[:MAX_LINE_BYTES]!r})"
        )
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError:
        raise LineFrameError(f"non-ASCII bytes in {line[:MAX_LINE_BYTES]!r}") from None


def parse_error_code(payload: str) -> int | None:
    """The code of an ``ERR,<code>`` payload, or None if the payload is not an error."""
    parts = payload.split(",")
    if parts[0] != ERROR_PREFIX:
        return None
    if len(parts) != 2 or not parts[1].isdigit():
        raise LineReplyError(f"malformed error reply {payload!r} (expected ERR,<code>)")
    return int(parts[1])


def parse_reading(payload: str) -> list[int]:
    """The eight READ fields, as raw unsigned integers in `FIELDS` order."""
    parts = payload.split(",")
    if parts[0] != READING_PREFIX:
        raise LineReplyError(f"expected a {READING_PREFIX} reading, got {payload[:40]!r}")
    values = parts[1:]
    if len(values) != len(FIELDS):
        raise LineReplyError(
            f"{len(values)} fields in {payload[:MAX_LINE_BYTES]!r}, expected {len(FIELDS)}"
            f" ({', '.join(FIELDS)})"
        )
    raw: list[int] = []
    for name, text in zip(FIELDS, values, strict=True):
        if not text.isdigit() or not 0 <= int(text) <= 0xFFFF:
            raise LineReplyError(f"field {name} is {text!r}, not an integer 0..65535")
        raw.append(int(text))
    return raw


def format_reading(raw: list[int]) -> bytes:
    """The READ reply for eight raw field values (the simulated meter's side)."""
    if len(raw) != len(FIELDS):
        raise ValueError(f"{len(raw)} values, expected {len(FIELDS)}")
    return frame(",".join([READING_PREFIX, *(str(int(v)) for v in raw)]))
