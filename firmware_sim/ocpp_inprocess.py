"""OCPP stations in process, for drills on a virtual clock: the real protocol, no sockets.

A drill runs the controller and the plant in one process on a virtual clock. Its Modbus
devices are reached through in-process register banks (`inprocess.py`); its OCPP
stations (2.1, 2.0.1 and 1.6) are the same simulated stations as on the wire, speaking
OCPP-J through the `ocpp` library on both sides, over in-memory pipes into the
controller's own `CentralSystem` (`serve_connection`). Only the WebSocket and its
authentication are left out.

Nothing takes real time: `step()` runs the stations' timers on the virtual clock and
then lets both sides' tasks run until every message sent has been handled and answered
(`ocpp_pipe.settle`); the drill calls it around each controller cycle. The library's
schema validation runs inline here (`inline_validation`), not in a worker thread, so a
message is never in flight while every pipe is idle; and the library's payload
conversions on the stations' side are `resilience.ocpp.casing`'s, which return the same
and cost a fraction (`fast_conversions`; the central system always uses them).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Generator
from typing import Any

import ocpp.charge_point
import ocpp.messages

from firmware_sim.ocpp_legacy import site_station
from firmware_sim.ocpp_pipe import settle
from firmware_sim.ocpp_station import InMemoryConnector, ServeConnection, SimStation
from firmware_sim.plant import Plant
from resilience.config import SiteConfig
from resilience.ocpp import casing

__all__ = ["InProcessStations", "fast_conversions", "inline_validation"]

_CONVERSIONS = ("camel_to_snake_case", "snake_to_camel_case", "serialize_as_dict")


@contextlib.contextmanager
def fast_conversions() -> Generator[None, None, None]:
    """The library's `ChargePoint` (the simulated stations', and the central system's calls
    to them) converts payloads with `resilience.ocpp.casing`'s functions: the same results
    (tests/ocpp/test_casing.py), memoised per key and without `asdict`'s deep copies.
    The library looks these names up in its module on every message, so swapping them
    there is enough. Restored on exit."""
    before = {name: getattr(ocpp.charge_point, name) for name in _CONVERSIONS}
    for name in _CONVERSIONS:
        setattr(ocpp.charge_point, name, getattr(casing, name))
    try:
        yield
    finally:
        for name, function in before.items():
            setattr(ocpp.charge_point, name, function)


async def _not_validated(message: Any, ocpp_version: str) -> None:
    return None


@contextlib.contextmanager
def inline_validation(*, validate: bool = False) -> Generator[None, None, None]:
    """How the `ocpp` library checks payloads while a drill runs.

    It validates every payload against the JSON schemas in the event loop's executor by
    default: inline, a drill's settle() sees every message through without waiting on a
    thread. With `validate` False (drills on the virtual clock) not at all: both ends are
    our own code, whose every message the tests over real WebSockets validate (and an
    independent implementation checks, tests/ocpp/test_third_party_station.py); here it
    was half the cost of a 72 h drill. Both ends (the library's ChargePoint and the
    central system's sessions) call `ocpp.charge_point.validate_payload`, the one name
    swapped here. The payload conversions are the fast ones meanwhile (`fast_conversions`).
    Restored on exit.
    """
    before = ocpp.messages.ASYNC_VALIDATION
    validator = ocpp.charge_point.validate_payload
    ocpp.messages.ASYNC_VALIDATION = False
    if not validate:
        ocpp.charge_point.validate_payload = _not_validated
    try:
        with fast_conversions():
            yield
    finally:
        ocpp.messages.ASYNC_VALIDATION = before
        ocpp.charge_point.validate_payload = validator


def _busy(station: SimStation) -> Callable[[], bool]:
    return lambda: station.busy


class InProcessStations:
    """One simulated station per OCPP station of the site (2.1, 2.0.1 or 1.6), each on an
    in-memory pipe into `serve` (a `CentralSystem.serve_connection`), on `clock`."""

    def __init__(
        self,
        config: SiteConfig,
        plant: Plant,
        serve: ServeConnection,
        clock: Callable[[], float],
        *,
        epoch_s: float | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.stations: dict[str, SimStation] = {}
        self._busy = busy
        for device_id, device in config.ocpp_stations.items():
            if device.ocpp is None:
                continue
            self.stations[device_id] = site_station(
                device_id,
                device,
                config.ocpp,
                plant,
                functools.partial(InMemoryConnector, serve, device.ocpp.identity),
                clock=clock,
                epoch_s=epoch_s,
            )

    def __bool__(self) -> bool:
        return bool(self.stations)

    def _pipes(self) -> list[Any]:
        pipes: list[Any] = []
        for station in self.stations.values():
            connector = station.connector
            if isinstance(connector, InMemoryConnector):
                pipes.extend(connector.pipes)
        return pipes

    def _checks(self) -> list[Callable[[], bool]]:
        checks: list[Callable[[], bool]] = [_busy(s) for s in self.stations.values()]
        if self._busy is not None:
            checks.append(self._busy)
        return checks

    async def start(self) -> None:
        for station in self.stations.values():
            station.tick()  # the car already plugged in is seen at once
            station.start()
        await self.settle()

    async def settle(self) -> None:
        """Until everything sent has been handled and answered, on both sides."""
        if self.stations:
            await settle(self._pipes(), self._checks())

    async def step(self) -> None:
        """The stations' timers at the clock's time, then everything they sent handled."""
        for station in self.stations.values():
            station.tick()
        await self.settle()

    async def stop(self) -> None:
        for station in self.stations.values():
            await station.stop()
