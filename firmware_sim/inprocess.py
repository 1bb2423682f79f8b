"""An in-process `RegisterTransport`: resilience's drivers over the simulated register banks.

For drills much faster than real time. The drivers are the real ones and the
register banks are the real simulated firmware (`devices.py`); only the Modbus
framing and the sockets are skipped. Behaviour matches the TCP servers:

- a device silenced by a fault injection (`SimulatedDevice.silent`) never
  answers: `DeviceTimeout`, as a client would report after its timeout;
- a Modbus exception code from the bank (an injected one, ILLEGAL_ADDRESS for
  an address outside the map, ILLEGAL_VALUE for a refused write) becomes
  `DeviceExceptionResponse` with that code;
- a unit id that no device behind the endpoint has: `DeviceTimeout` (a
  gateway with nothing behind it stays quiet);
- a request that can never be valid (200 registers at once, a value that does
  not fit 16 bits) is a `ValueError`, as `ModbusTcpBus` raises.

The transport takes no time: a drill's virtual clock decides when things
happen. `firmware_sim` imports `resilience`, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pymodbus.constants import ExcCodes

from firmware_sim.devices import SimulatedDevice, build_devices
from firmware_sim.plant import Plant
from resilience.config import SiteConfig
from resilience.transport.errors import DeviceExceptionResponse, DeviceTimeout
from resilience.transport.modbus import MAX_READ_COUNT, check_request, check_write

__all__ = ["InProcessTransport", "build_inprocess_drivers", "transports_for"]


class InProcessTransport:
    """The units behind one endpoint, answered straight from their register banks.

    `units` maps Modbus unit id -> simulated device; `endpoint` names the
    transport in error messages (``host:port (in-process)`` by default).
    """

    def __init__(self, units: Mapping[int, SimulatedDevice], endpoint: str = "in-process") -> None:
        self.units = dict(units)
        self.endpoint = endpoint
        self.reads = 0
        self.writes = 0

    def _timeout(self, unit_id: int, address: int, what: str) -> DeviceTimeout:
        return DeviceTimeout(
            f"{self.endpoint} unit {unit_id}: {what}: no answer (in-process)",
            endpoint=self.endpoint,
            unit_id=unit_id,
            address=address,
        )

    def _exception(self, code: ExcCodes, unit_id: int, address: int, what: str) -> Exception:
        number = int(code)
        name = DeviceExceptionResponse.code_name(number)
        return DeviceExceptionResponse(
            f"{self.endpoint} unit {unit_id}: {what}: Modbus exception {number} ({name})",
            code=number,
            endpoint=self.endpoint,
            unit_id=unit_id,
            address=address,
        )

    async def read(self, unit_id: int, address: int, count: int) -> list[int]:
        """Exactly `count` registers from `address`, as FC3 would return them."""
        check_request(address, count, MAX_READ_COUNT)
        self.reads += 1
        device = self.units.get(unit_id)
        result = None if device is None else device.answer(address, count)
        if result is None:
            raise self._timeout(unit_id, address, f"reading {count} registers at {address}")
        if isinstance(result, ExcCodes):
            what = f"reading {count} registers at {address}"  # worded only when it fails
            raise self._exception(result, unit_id, address, what)
        return result

    async def write(self, unit_id: int, address: int, values: Sequence[int]) -> None:
        """`values` from `address` in one request (all-or-nothing, as FC16)."""
        values = [int(v) for v in values]
        check_write(address, values)
        self.writes += 1
        what = f"writing {len(values)} registers at {address}"
        device = self.units.get(unit_id)
        if device is None or device.silent:
            raise self._timeout(unit_id, address, what)
        code = device.write(address, values)
        if code is not None:
            raise self._exception(code, unit_id, address, what)

    async def close(self) -> None:
        return None


def transports_for(
    config: SiteConfig, devices: Mapping[str, SimulatedDevice]
) -> dict[str, InProcessTransport]:
    """One transport per endpoint of the site file (a ``host:port``, or a serial port: each
    line is a bus of its own), keyed by device id (shared like a bus)."""
    modbus = {name: d for name, d in config.devices.items() if d.transport != "ocpp"}
    by_endpoint: dict[str, dict[int, SimulatedDevice]] = {}
    for device_id, device in modbus.items():
        by_endpoint.setdefault(device.endpoint, {})[device.unit_id] = devices[device_id]
    transports = {
        endpoint: InProcessTransport(units, f"{endpoint} (in-process)")
        for endpoint, units in by_endpoint.items()
    }
    return {device_id: transports[device.endpoint] for device_id, device in modbus.items()}


def build_inprocess_drivers(plant: Plant) -> dict[str, object]:
    """The controller's drivers for every Modbus device of the plant's site, over in-process
    banks. OCPP stations are not among them: their drivers come from the controller's
    central system, which in-process stations (`ocpp_station.SimStation` on an
    `InMemoryConnector`) connect to."""
    from resilience.drivers.registry import driver_for

    devices = build_devices(plant)
    transports = transports_for(plant.config, devices)
    return {
        name: driver_for(name, device, transports[name])
        for name, device in plant.config.devices.items()
        if device.transport != "ocpp"
    }
