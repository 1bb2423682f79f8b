"""Why a device could not be read or written: the transport exception tree.

Every failure a driver can raise while talking to a field device is a
`TransportError`, so the control cycle needs one ``except`` clause to mark a
device unavailable for the cycle::

    TransportError                  the device could not be used this cycle
     ├── DeviceUnreachable          no connection (refused, no route, backing off)
     ├── DeviceTimeout              connected, but no answer within the timeout
     ├── DeviceExceptionResponse    the device answered with a Modbus exception code
     ├── BadFrame                   garbled, truncated or mismatched reply
     └── BadReply                   a well-formed reply with impossible values, or
                                    the wrong device (raised by drivers, not the bus)

Every message names the device endpoint (``host:port unit N``), the register
address and what went wrong, so a log line is enough to go and look at the
right device. The same facts are attributes for code that wants them.
"""

from __future__ import annotations

__all__ = [
    "BadFrame",
    "BadReply",
    "DeviceExceptionResponse",
    "DeviceTimeout",
    "DeviceUnreachable",
    "TransportError",
    "describe_endpoint",
]


def describe_endpoint(endpoint: str, unit_id: int) -> str:
    """``host:port unit N``: how every message names a device."""
    return f"{endpoint} unit {unit_id}"


class TransportError(Exception):
    """A device could not be read or written this cycle.

    `endpoint` is ``host:port`` (or the name of an in-process transport),
    `unit_id` the Modbus unit id and `address` the first register involved;
    each is ``None`` when it does not apply.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        unit_id: int | None = None,
        address: int | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.unit_id = unit_id
        self.address = address


class DeviceUnreachable(TransportError):
    """No connection to the device's endpoint (refused, unroutable, or backing off)."""


class DeviceTimeout(TransportError):
    """The endpoint accepted the request but no answer came within the timeout."""


_EXCEPTION_NAMES = {
    0x01: "ILLEGAL_FUNCTION",
    0x02: "ILLEGAL_ADDRESS",
    0x03: "ILLEGAL_VALUE",
    0x04: "DEVICE_FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "DEVICE_BUSY",
    0x07: "NEGATIVE_ACKNOWLEDGE",
    0x08: "MEMORY_PARITY_ERROR",
    0x0A: "GATEWAY_PATH_UNAVAILABLE",
    0x0B: "GATEWAY_NO_RESPONSE",
}


class DeviceExceptionResponse(TransportError):
    """The device answered with a Modbus exception; `code` is the exception code."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        endpoint: str | None = None,
        unit_id: int | None = None,
        address: int | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, unit_id=unit_id, address=address)
        self.code = code

    @property
    def name(self) -> str:
        """The Modbus name of `code`, e.g. ``ILLEGAL_ADDRESS``."""
        return self.code_name(self.code)

    @staticmethod
    def code_name(code: int) -> str:
        return _EXCEPTION_NAMES.get(code, f"UNKNOWN_EXCEPTION_{code:#04x}")


class BadFrame(TransportError):
    """A reply that does not fit the request: garbled, truncated, wrong length or kind."""


class BadReply(TransportError):
    """A well-formed reply that cannot be believed.

    Raised by drivers: a value outside its physical range (the message names the
    device, the register, the value and the allowed range), a "not implemented"
    marker where a value is required, or the wrong kind of device behind the
    endpoint (SunSpec marker or model id missing).
    """
