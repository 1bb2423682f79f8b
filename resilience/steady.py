"""When a cycle on the grid may keep the last decision instead of making it again.

On the grid, the controller cycles every 20 ms for one reason: a grid loss must be seen,
and the PCC opened, within a cycle (issue 14: grid loss -> open command p99 <= 30 ms).
Nothing else on the grid needs a new decision fifty times a second, and the decision
(snapshot, mode machine, write plan, record) was a third of the gateway's CPU. So every
cycle still reads the grid meter and the PCC breaker, but on the grid the decision is
made again only when something it rests on may have changed, and at least every
`STEADY_DECISION_MAX_S`:

- the grid meter answered and its reading is inside the enter-service window and past
  no must-trip point, and no must-trip timer runs: a grid that sags, swells, drifts or
  goes is decided on in the cycle that reads it, as before;
- every other device answers (or not) as at the last decision, with the very same
  reading (a driver hands back the same object for an identical reply): the breaker
  moving, a device falling silent or answering again, a charger or an OCPP station
  reporting anything new is decided on at once;
- no operator command waits, no write is under way, and nothing is timed at the cycle's
  period (`timed_action_pending`: the ramp-down after a reconnection, a breaker command
  waiting for its feedback).

Off the grid (islanding, islanded, a black start, resynchronising) every cycle decides.
Unknown is unsafe (rule 5): a meter that did not answer is never "steady".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from resilience.config import GridSection, TripPoint
from resilience.model import BreakerCommand, GridReading, Mode
from resilience.modes import RAMP_DOWN_S, Memory
from resilience.policies.grid import grid_healthy, within_trip_limits

__all__ = ["STEADY_DECISION_MAX_S", "STEADY_MODES", "may_keep_decision", "timed_action_pending"]

STEADY_DECISION_MAX_S = 0.1
"""[s] on a steady grid, a full decision at least this often (what moves with the clock
alone, a restore delay or a re-assertion, is at most this late): the default of
`[site] steady_decision_max_s`; 0 makes every cycle decide."""

STEADY_MODES = frozenset({Mode.GRID_CONNECTED, Mode.ISLANDED, Mode.EMERGENCY})
"""The modes a site can sit in for hours; every other one times something."""


def timed_action_pending(mode: Mode, memory: Memory, grid: GridSection, now_s: float) -> bool:
    """The controller is waiting on something it times at its own period: any mode but the
    steady ones (a synchronised close waiting for the angle, a black start, planned
    islanding, islanding, starting); in a steady mode the ramp-down of the local sources
    after reconnecting, and a breaker command still waiting for its feedback (the retry
    after `grid.breaker_operate_timeout_s`)."""
    if mode not in STEADY_MODES:
        return True
    ramp_from = memory.ramp_down_from_s
    if ramp_from is not None and now_s - ramp_from < RAMP_DOWN_S:
        return True
    sent = memory.pcc_command_s
    return (
        memory.pcc_command is not BreakerCommand.NONE
        and sent is not None
        and now_s - sent < grid.breaker_operate_timeout_s
    )


def may_keep_decision(
    *,
    mode: Mode,
    memory: Memory,
    grid: GridSection,
    trip_points: Sequence[TripPoint],
    meter: GridReading | None,
    now_s: float,
    decided_s: float | None,
    field_unchanged: Callable[[], bool],
    busy: bool,
    max_s: float = STEADY_DECISION_MAX_S,
) -> bool:
    """Whether this cycle may keep the decision made at `decided_s` (module doc).

    `field_unchanged()`: every device but the grid meter answers as at that decision, with
    the same reading (asked last: the cheap conditions rule most cycles out, a drill's on
    an island or ten seconds apart all of them); `busy`: an operator command waits or a
    write is under way."""
    if mode is not Mode.GRID_CONNECTED or decided_s is None or busy:
        return False
    if not 0.0 <= now_s - decided_s < max_s:
        return False
    if meter is None or not (math.isfinite(meter.voltage_v) and math.isfinite(meter.frequency_hz)):
        return False
    if any(since is not None for since in memory.trip_state.beyond_since_s or ()):
        return False
    if not (
        grid_healthy(meter, grid) and within_trip_limits(meter, trip_points, grid.nominal_voltage_v)
    ):
        return False
    return not timed_action_pending(mode, memory, grid, now_s) and field_unchanged()
