"""The pymodbus datastore of a simulated endpoint: it answers for its own unit ids only.

pymodbus 3.16's `SimCore` hands a request for an unknown unit id to unit 0, and
without a unit 0 it fails with a `KeyError`, which the server answers with
DEVICE_FAILURE (4) and a logged traceback. A real endpoint does neither: an
RS-485-to-TCP gateway answers GATEWAY_TARGET_FAILED_TO_RESPOND (0x0B) for a unit
id nobody answers behind it, and on an RS-485 line such a request is simply not
answered. `KnownUnits` raises `NoSuchIdException` instead, which pymodbus's
request handler turns into exactly that: exception 0x0B, or silence when the
server was made with ``ignore_missing_devices=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusBaseServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

if TYPE_CHECKING:
    from firmware_sim.devices import SimulatedDevice

__all__ = ["Action", "KnownUnits", "answer_known_units_only", "sim_devices"]

Action = Callable[
    [int, int, int, int, list[int], list[int] | list[bool] | None],
    Coroutine[None, None, ExcCodes | None],
]
"""A pymodbus simulator action: (function code, start, address, count, registers,
values written or None) -> the exception to answer with, or None."""


def sim_devices(
    devices: Mapping[int, SimulatedDevice], action_for: Callable[[SimulatedDevice], Action]
) -> list[SimDevice]:
    """One pymodbus `SimDevice` per unit id, its register bank the size of the device's map;
    every request goes through the device's own action (reads render the plant's state)."""
    return [
        SimDevice(
            id=unit,
            simdata=[
                SimData(dev.base_address, count=dev.size, values=0, datatype=DataType.REGISTERS)
            ],
            action=action_for(dev),
        )
        for unit, dev in devices.items()
    ]


class KnownUnits(SimCore):
    """A `SimCore` that refuses unit ids it does not hold (even with a unit 0)."""

    def _check(self, device_id: int) -> None:
        if device_id not in self.devices:
            raise NoSuchIdException(f"no unit {device_id} here")

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check(device_id)
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        self._check(device_id)
        return await super().async_setValues(device_id, func_code, address, values)


def answer_known_units_only(server: ModbusBaseServer, devices: list[SimDevice]) -> None:
    """Swap the datastore pymodbus built from `devices` for a `KnownUnits` of the same."""
    server.context = KnownUnits(devices)
