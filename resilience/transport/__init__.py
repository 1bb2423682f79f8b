"""Transports: how drivers reach device registers (Modbus TCP today).

`RegisterTransport` is the one interface drivers use; `ModbusTcpBus` implements
it over pymodbus, `BusPool` hands out one bus per ``host:port``, and
`resilience.transport.errors` holds the exception tree every failure maps onto.
"""

from resilience.transport.errors import (
    BadFrame,
    BadReply,
    DeviceExceptionResponse,
    DeviceTimeout,
    DeviceUnreachable,
    TransportError,
)
from resilience.transport.modbus import BusPool, ModbusTcpBus, RegisterTransport

__all__ = [
    "BadFrame",
    "BadReply",
    "BusPool",
    "DeviceExceptionResponse",
    "DeviceTimeout",
    "DeviceUnreachable",
    "ModbusTcpBus",
    "RegisterTransport",
    "TransportError",
]
