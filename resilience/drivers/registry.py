"""Driver names (as the site config spells them) -> driver classes, and the factory.

Drivers register by name, evcc style: the site file says ``driver = "pcc_breaker"``
and `build_driver` finds the class, takes the shared bus for the device's
``host:port`` from the `BusPool` and calls the class's ``from_config``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resilience import devices
from resilience.config import Device
from resilience.drivers.base import RegisterDriver
from resilience.drivers.bidirectional_charger import BidirectionalChargerDriver
from resilience.drivers.load_panel import LoadPanel
from resilience.drivers.pcc_breaker import PccBreaker
from resilience.drivers.sunspec_inverter import SunSpecInverter
from resilience.drivers.sunspec_meter import SunSpecMeter
from resilience.drivers.v2l_outlet import V2LOutletDriver
from resilience.drivers.v2l_serial import V2LSerialDriver
from resilience.transport.modbus import BusPool, RegisterTransport

__all__ = ["DRIVERS", "build_driver", "driver_for"]

DRIVERS: dict[str, type[RegisterDriver]] = {
    "sunspec_meter": SunSpecMeter,
    "pcc_breaker": PccBreaker,
    "load_panel": LoadPanel,
    "bidirectional_charger": BidirectionalChargerDriver,
    "v2l_outlet": V2LOutletDriver,
    "v2l_serial": V2LSerialDriver,
    "sunspec_inverter": SunSpecInverter,
}
"""Every driver by its config name; each class has ``from_config(name, device, transport)``."""


def driver_for(name: str, device: Device, transport: RegisterTransport) -> RegisterDriver:
    """The driver of config entry `devices.<name>` over any transport (in-process for drills)."""
    try:
        cls = DRIVERS[device.driver]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ValueError(
            f"devices.{name}: unknown driver {device.driver!r} (known: {known})"
        ) from None
    return cls.from_config(name, device, transport)


def build_driver(name: str, device: Device, pool: BusPool) -> RegisterDriver:
    """The driver of config entry `devices.<name>`, on the pool's bus for its endpoint:
    a Modbus TCP bus per host:port, a Modbus RTU bus per serial port, or a serial line
    for a line-protocol device (transport "serial")."""
    if device.transport == "tcp":
        if device.port == 0:
            raise ValueError(f"devices.{name}: transport tcp needs a port")
        return driver_for(name, device, pool.get(device.host, device.port, device.timeout_s))
    if device.serial_port is None:
        raise ValueError(f"devices.{name}: transport {device.transport} needs a serial_port")
    if device.transport == "rtu":
        bus = pool.get_rtu(
            device.serial_port,
            baudrate=device.baudrate,
            parity=device.parity,
            stopbits=device.stopbits,
            timeout_s=device.timeout_s,
        )
        return driver_for(name, device, bus)
    line = pool.get_line(
        device.serial_port,
        baudrate=device.baudrate,
        parity=device.parity,
        stopbits=device.stopbits,
        timeout_s=device.timeout_s,
    )
    if device.driver == "v2l_serial":
        return V2LSerialDriver.on_line(line, name=name, rating_w=device.rating_w)
    raise ValueError(f"devices.{name}: a {device.driver} has no line protocol (transport serial)")


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
