"""Driver names (as the site config spells them) -> drivers, and the factory.

Drivers register by name, evcc style: the site file says ``driver = "pcc_breaker"``
and `build_driver` builds it for the device's transport. The registry is about how a
device is reached, not about registers: a Modbus driver is built on the shared bus of
its ``host:port`` or serial port (`REGISTER_DRIVERS`), an OCPP station on the
controller's own central system, where the station connects to us (`DriverContext.csms`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from resilience import devices
from resilience.config import Device, TransportName
from resilience.drivers.base import RegisterDriver
from resilience.drivers.bidirectional_charger import BidirectionalChargerDriver
from resilience.drivers.load_panel import LoadPanel
from resilience.drivers.pcc_breaker import PccBreaker
from resilience.drivers.sunspec_inverter import SunSpecInverter
from resilience.drivers.sunspec_meter import SunSpecMeter
from resilience.drivers.v2l_outlet import V2LOutletDriver
from resilience.drivers.v2l_serial import V2LSerialDriver
from resilience.transport.modbus import BusPool, RegisterTransport

__all__ = [
    "DRIVERS",
    "PUSHED_DRIVERS",
    "REGISTER_DRIVERS",
    "DriverContext",
    "StationDrivers",
    "build_driver",
    "driver_for",
]

REGISTER_DRIVERS: dict[str, type[RegisterDriver]] = {
    "sunspec_meter": SunSpecMeter,
    "pcc_breaker": PccBreaker,
    "load_panel": LoadPanel,
    "bidirectional_charger": BidirectionalChargerDriver,
    "v2l_outlet": V2LOutletDriver,
    "v2l_serial": V2LSerialDriver,
    "sunspec_inverter": SunSpecInverter,
}
"""Drivers over registers, by config name; each has ``from_config(name, device, transport)``."""
DRIVERS = REGISTER_DRIVERS  # the name older code and tests use

PUSHED_DRIVERS = frozenset({"ocpp"})
"""Drivers whose device connects to the controller and pushes its readings (OCPP)."""


class StationDrivers(Protocol):
    """What builds an OCPP station's driver: the controller's central system."""

    def driver(self, name: str, device: Device) -> devices.BidirectionalCharger: ...


@dataclass(frozen=True)
class DriverContext:
    """Where drivers find their connections: the Modbus buses, and the central system
    OCPP stations connect to (None on a site without stations)."""

    pool: BusPool
    csms: StationDrivers | None = None


def driver_for(name: str, device: Device, transport: RegisterTransport) -> RegisterDriver:
    """The register driver of config entry `devices.<name>` over any register transport
    (in-process for drills)."""
    try:
        cls = REGISTER_DRIVERS[device.driver]
    except KeyError:
        known = ", ".join(sorted(REGISTER_DRIVERS))
        raise ValueError(
            f"devices.{name}: driver {device.driver!r} has no registers (register drivers:"
            f" {known})"
        ) from None
    return cls.from_config(name, device, transport)


def _tcp(name: str, device: Device, context: DriverContext) -> Any:
    if device.port == 0:
        raise ValueError(f"devices.{name}: transport tcp needs a port")
    return driver_for(name, device, context.pool.get(device.host, device.port, device.timeout_s))


def _serial_port(name: str, device: Device) -> str:
    if device.serial_port is None:
        raise ValueError(f"devices.{name}: transport {device.transport} needs a serial_port")
    return device.serial_port


def _line_settings(device: Device) -> dict[str, Any]:
    """How the device's serial line is set up, as the pool opens it."""
    return {
        "baudrate": device.baudrate,
        "parity": device.parity,
        "stopbits": device.stopbits,
        "timeout_s": device.timeout_s,
    }


def _rtu(name: str, device: Device, context: DriverContext) -> Any:
    bus = context.pool.get_rtu(_serial_port(name, device), **_line_settings(device))
    return driver_for(name, device, bus)


def _line(name: str, device: Device, context: DriverContext) -> Any:
    line = context.pool.get_line(_serial_port(name, device), **_line_settings(device))
    if device.driver == "v2l_serial":
        return V2LSerialDriver.on_line(line, name=name, rating_w=device.rating_w)
    raise ValueError(f"devices.{name}: a {device.driver} has no line protocol (transport serial)")


def _ocpp(name: str, device: Device, context: DriverContext) -> Any:
    if context.csms is None:
        raise ValueError(
            f"devices.{name}: an OCPP station needs the controller's central system ([ocpp])"
        )
    return context.csms.driver(name, device)


TRANSPORTS: dict[TransportName, Callable[[str, Device, DriverContext], Any]] = {
    "tcp": _tcp,
    "rtu": _rtu,
    "serial": _line,
    "ocpp": _ocpp,
}
"""How each transport builds a device's driver."""


def build_driver(
    name: str, device: Device, pool: BusPool, csms: StationDrivers | None = None
) -> Any:
    """The driver of config entry `devices.<name>`: on the pool's bus for its endpoint (a
    Modbus TCP bus per host:port, a Modbus RTU bus per serial port, a serial line for a
    line-protocol device), or on the central system for an OCPP station."""
    if (device.driver in PUSHED_DRIVERS) != (device.transport == "ocpp"):
        raise ValueError(f"devices.{name}: a {device.driver} has no transport {device.transport}")
    return TRANSPORTS[device.transport](name, device, DriverContext(pool, csms))


if TYPE_CHECKING:  # mypy proves each driver implements its devices Protocol

    def _implements(transport: RegisterTransport) -> None:
        _meter: devices.Meter = SunSpecMeter(transport, 1, name="")
        _breaker: devices.Breaker = PccBreaker(transport, 1, name="")
        _panel: devices.LoadRelays = LoadPanel(transport, 1, name="")
        _charger: devices.BidirectionalCharger = BidirectionalChargerDriver(
            transport, 1, name="", rating_w=1.0
        )
        _outlet: devices.V2LOutlet = V2LOutletDriver(transport, 1, name="")
        _pv: devices.PVInverter = SunSpecInverter(transport, 1, name="")
