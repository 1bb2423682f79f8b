"""Alarms for faults that are not modes: a clear alarm for each, logged once, cleared once.

The mode machine (`resilience.modes`) alarms what changes the site's mode (a
lost grid-former, emergency, a breaker that fails to operate); the cycle
(`resilience.cycle`) alarms devices that stop answering. `Supervisor` watches
the published status once per cycle for the faults left, which change no mode
but must not go unnoticed:

    clock_jump                 the wall clock jumped (NTP step, RTC reset, operator):
                               decisions run on the monotonic clock and are unaffected,
                               but timestamps in the store jump too; cleared after
                               `clock_alarm_hold_s` without another jump
    grid_unstable              the grid came and went `flicker_losses` times within
                               `flicker_window_s`; cleared once it stayed healthy that long
    vehicle_unplugged:<id>     a vehicle left a charger or V2L outlet while it was
                               delivering power; cleared when a vehicle is plugged in again
    charger_fault:<id>         a charger reports a fault (internal, overload, anti-islanding)
    former_leaving             (critical) the island's grid-former is due to leave within twice
                               `dispatch.leave_notice_s` and no other vehicle can form the grid
                               (`policies.leaving`): the island keeps forming on it and will
                               collapse when it is unplugged; cleared once that no longer holds
    store_unhealthy            the SQLite store cannot write (locked, disk full): control goes
                               on, records wait in memory; cleared when writes succeed again
                               (`store_health` from the store's writer thread, and a look at
                               `store_healthy()` every cycle)

It decides nothing and commands nothing: it only raises and clears alarms
through the controller's alarm path (store + published alarms).
Times: monotonic seconds from the snapshot, wall seconds from `wall()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resilience.config import SiteConfig
from resilience.model import ChargerState, V2LState
from resilience.policies.grid import grid_healthy
from resilience.policies.leaving import former_leaving_message

if TYPE_CHECKING:
    from resilience.cycle import SiteStatus

log = logging.getLogger("resilience.supervision")

AlarmSink = Callable[[str, bool, str, str], None]
"""(code, raised, severity, message): the controller's alarm path."""

DELIVERING_W = 50.0  # [W] above this a vehicle counts as delivering power


class Supervisor:
    """Watches each cycle's status and raises or clears the alarms of the module docstring."""

    def __init__(
        self,
        config: SiteConfig,
        alarm: AlarmSink,
        wall: Callable[[], float],
        *,
        store_healthy: Callable[[], bool] | None = None,
        clock_jump_s: float = 2.0,
        clock_alarm_hold_s: float = 60.0,
        flicker_losses: int = 3,
        flicker_window_s: float = 60.0,
    ) -> None:
        self.config = config
        self._alarm = alarm
        self._wall = wall
        self.clock_jump_s = clock_jump_s
        self.clock_alarm_hold_s = clock_alarm_hold_s
        self.flicker_losses = flicker_losses
        self.flicker_window_s = flicker_window_s
        self._last: tuple[float, float] | None = None  # (monotonic, wall) of the last cycle
        self._clock_clear_at: float | None = None
        self._grid_was_healthy: bool | None = None
        self._grid_losses: deque[float] = deque()
        self._grid_healthy_since: float | None = None
        self._unstable = False
        self._delivering: dict[str, tuple[str | None, float]] = {}
        self._unplugged: set[str] = set()
        self._faulted: set[str] = set()
        self._former_leaving = False
        # the vehicle and outlet tuples the connector checks last ran on (`on_status`)
        self._seen: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None
        self._store_healthy = store_healthy
        self._store_ok = True
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()

    # ------------------------------------------------------------------ per cycle
    def on_status(self, status: SiteStatus) -> None:
        """A `Controller.on_status` listener: runs once per cycle, in the control loop."""
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        snap = status.snapshot
        now, wall = snap.time_s, self._wall()
        self._check_clock(now, wall)
        self._check_grid(status, now)
        seen = (snap.vehicles, snap.outlets)
        if self._seen is None or seen[0] is not self._seen[0] or seen[1] is not self._seen[1]:
            # Both checks depend on these tuples alone and are idempotent: the controller
            # hands over the very same tuples while no connector's reading changed.
            self._seen = seen
            self._check_vehicles(status)
            self._check_former_leaving(status)
        if self._store_healthy is not None:
            self._store_alarm(self._store_healthy())

    def _check_clock(self, now: float, wall: float) -> None:
        if self._last is not None:
            last_now, last_wall = self._last
            jump = (wall - last_wall) - (now - last_now)
            if abs(jump) > self.clock_jump_s:
                message = (
                    f"wall clock jumped {jump:+.1f} s; decisions use the monotonic clock and"
                    " are unaffected, timestamps in the log jump with it"
                )
                log.warning("%s", message)
                self._alarm("clock_jump", True, "warning", message)
                self._clock_clear_at = now + self.clock_alarm_hold_s
        self._last = (now, wall)
        if self._clock_clear_at is not None and now >= self._clock_clear_at:
            self._clock_clear_at = None
            log.info("wall clock steady for %.0f s", self.clock_alarm_hold_s)
            self._alarm("clock_jump", False, "warning", "")

    def _check_grid(self, status: SiteStatus, now: float) -> None:
        grid = status.snapshot.grid
        if grid is None:
            return  # unknown: neither a loss nor a return
        healthy = grid_healthy(grid, self.config.grid)
        if self._grid_was_healthy and not healthy:
            self._grid_losses.append(now)
        if healthy and not self._grid_was_healthy:
            self._grid_healthy_since = now
        elif not healthy:
            self._grid_healthy_since = None
        self._grid_was_healthy = healthy
        while self._grid_losses and now - self._grid_losses[0] > self.flicker_window_s:
            self._grid_losses.popleft()
        if not self._unstable and len(self._grid_losses) >= self.flicker_losses:
            self._unstable = True
            message = (
                f"grid lost {len(self._grid_losses)} times within {self.flicker_window_s:.0f} s;"
                " the site reconnects only after the grid has been healthy for"
                f" {self.config.grid.return_to_service_s:.0f} s (return-to-service delay)"
            )
            log.warning("%s", message)
            self._alarm("grid_unstable", True, "warning", message)
        elif (
            self._unstable
            and self._grid_healthy_since is not None
            and now - self._grid_healthy_since >= self.flicker_window_s
        ):
            self._unstable = False
            self._grid_losses.clear()
            log.info("grid stable again for %.0f s", self.flicker_window_s)
            self._alarm("grid_unstable", False, "warning", "")

    def _check_vehicles(self, status: SiteStatus) -> None:
        snap = status.snapshot
        connectors: list[tuple[str, str | None, bool, bool, float]] = []
        for v in snap.vehicles:
            if v.available:
                delivering = v.plugged and (
                    v.power_w > DELIVERING_W or v.state is ChargerState.FORMING
                )
                connectors.append((v.charger_id, v.vehicle_id, v.plugged, delivering, v.power_w))
                self._check_charger_fault(v.charger_id, v.state)
        for o in snap.outlets:
            if o.available:
                plugged = o.state is not V2LState.UNPLUGGED
                delivering = o.state is V2LState.SUPPLYING and o.power_w > DELIVERING_W
                connectors.append((o.outlet_id, o.vehicle_id, plugged, delivering, o.power_w))
        for connector, vehicle_id, plugged, delivering, power_w in connectors:
            code = f"vehicle_unplugged:{connector}"
            was = self._delivering.get(connector)
            if not plugged and was is not None and connector not in self._unplugged:
                self._unplugged.add(connector)
                who = f"vehicle {was[0]}" if was[0] else "the vehicle"
                message = (
                    f"{connector}: {who} unplugged while delivering {was[1] / 1000:.1f} kW;"
                    " its share is taken over by the others"
                )
                log.warning("%s", message)
                self._alarm(code, True, "warning", message)
            elif plugged and connector in self._unplugged:
                self._unplugged.discard(connector)
                log.info("%s: vehicle plugged in again", connector)
                self._alarm(code, False, "warning", "")
            if delivering:
                self._delivering[connector] = (vehicle_id, power_w)
            else:
                self._delivering.pop(connector, None)

    def _check_former_leaving(self, status: SiteStatus) -> None:
        message = former_leaving_message(status.snapshot.vehicles, self.config.dispatch)
        if message is not None and not self._former_leaving:
            self._former_leaving = True
            log.warning("%s", message)
            self._alarm("former_leaving", True, "critical", message)
        elif message is None and self._former_leaving:
            self._former_leaving = False
            log.info("grid-former no longer leaving without a replacement")
            self._alarm("former_leaving", False, "critical", "")

    def _check_charger_fault(self, charger_id: str, state: ChargerState) -> None:
        code = f"charger_fault:{charger_id}"
        if state is ChargerState.FAULT and charger_id not in self._faulted:
            self._faulted.add(charger_id)
            message = f"{charger_id} reports a fault; it is left off until it clears"
            log.warning("%s", message)
            self._alarm(code, True, "warning", message)
        elif state is not ChargerState.FAULT and charger_id in self._faulted:
            self._faulted.discard(charger_id)
            log.info("%s fault cleared", charger_id)
            self._alarm(code, False, "warning", "")

    # ------------------------------------------------------------------ the store
    def store_health(self, healthy: bool) -> None:
        """`Store(on_health_change=...)`: called from the writer thread; the alarm is raised
        in the control loop's thread."""
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._store_alarm, healthy)
        else:
            self._store_alarm(healthy)

    def _store_alarm(self, healthy: bool) -> None:
        if healthy == self._store_ok:
            return
        self._store_ok = healthy
        if healthy:
            self._alarm("store_unhealthy", False, "critical", "")
        else:
            self._alarm(
                "store_unhealthy",
                True,
                "critical",
                "the SQLite store cannot write (locked, disk full or failing); control goes on,"
                " records are kept in memory and written when it recovers",
            )
