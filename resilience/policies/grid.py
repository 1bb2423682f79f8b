"""Is the grid healthy, and has it been healthy long enough to go back to it? Must a
connected site leave it?

Owns the grid-health (enter-service) window, the return-to-service timer and the
must-trip evaluator (below). Units: voltage
[V] and per-unit [pu] of `nominal_voltage_v`, frequency [Hz], time [s].

A grid that comes back after an outage often flickers for minutes (reclosers,
crews switching feeders), so reconnecting on the first good reading would
drop the shelter back into an outage. The grid must stay inside both windows
continuously for `return_to_service_s` before `ready_for_return` says yes; one
bad or missing reading restarts the timer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from resilience.config import GridSection, TripPoint
from resilience.model import GridReading


def grid_healthy(grid: GridReading | None, cfg: GridSection) -> bool:
    """Whether this one grid reading is inside the voltage and frequency windows.

    A silent meter (`None`) is not healthy: we cannot return to a grid we
    cannot see. Both window edges are inclusive. A NaN reading fails every
    comparison and so counts as unhealthy.
    """
    if grid is None:
        return False
    v_lo, v_hi = cfg.voltage_window_pu
    f_lo, f_hi = cfg.frequency_window_hz
    voltage_pu = grid.voltage_v / cfg.nominal_voltage_v
    return v_lo <= voltage_pu <= v_hi and f_lo <= grid.frequency_hz <= f_hi


def healthy_since(previous_since_s: float | None, healthy: bool, now_s: float) -> float | None:
    """The start [s] of the current unbroken healthy run, or None when unhealthy now.

    Feed back the previous cycle's answer: a healthy cycle keeps the old start
    (or starts a run at `now_s`), an unhealthy one clears it.
    """
    if not healthy:
        return None
    return now_s if previous_since_s is None else previous_since_s


def ready_for_return(healthy_since_s: float | None, now_s: float, cfg: GridSection) -> bool:
    """Whether the grid has been healthy continuously for `return_to_service_s` [s]."""
    if healthy_since_s is None:
        return False
    return now_s - healthy_since_s >= cfg.return_to_service_s


# --------------------------------------------------------------------------- must-trip
# Two settings, two questions. The enter-service window (voltage_window_pu,
# frequency_window_hz, above) says when the site may go BACK to the grid. The must-trip
# table (`config.trip_points`: IEEE 1547-2018 OV2/OV1/UV1/UV2, OF2/OF1/UF1/UF2 with
# clearing times) says when a connected site must LEAVE it: the grid beyond a point for
# that point's clearing time opens the PCC; anything short of that is ridden through. A
# 60 Hz site on a 60.2 Hz grid stays connected (inside the table) but, once islanded,
# does not return until the grid is back inside 59.5-60.1 Hz.


TRIP_EPS_S = 1e-9
"""[s] a cycle this close to a clearing time is at it (cycle times are sums of floats)."""


@dataclass(frozen=True)
class TripState:
    """Per must-trip point (in the table's order), since when [s] the grid has been beyond
    it without a break, or None. Passed in and out of `evaluate_trip`: no hidden state."""

    beyond_since_s: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class TripVerdict:
    state: TripState
    tripped: TripPoint | None  # the point whose clearing time has run out (None: ride through)
    reason: str  # why it tripped ("" when it did not)


def _value(point: TripPoint, grid: GridReading, nominal_v: float) -> float:
    return grid.voltage_v / nominal_v if point.voltage else grid.frequency_hz


def beyond(point: TripPoint, grid: GridReading, nominal_v: float) -> bool:
    """Whether the reading is past the point (strictly: at the level is still inside)."""
    value = _value(point, grid, nominal_v)
    return value > point.level if point.over else value < point.level


def evaluate_trip(
    grid: GridReading | None,
    points: Sequence[TripPoint],
    nominal_v: float,
    state: TripState,
    now_s: float,
) -> TripVerdict:
    """Run each point's timer one cycle on and say whether one has cleared.

    A point's timer starts at the first reading beyond it and restarts whenever a reading
    is back inside (a short excursion is ridden through, and each new one gets the whole
    clearing time). A silent meter (`None`) or a non-finite reading is unknown, not a trip:
    the timers hold and nothing trips on it (safety rule 5); the next known reading beyond
    a point whose clearing time has passed trips at once. A running timer clears at
    `since + clearing_s` (`next_trip_s`), to within `TRIP_EPS_S`.
    """
    since = state.beyond_since_s or (None,) * len(points)
    if grid is None or not (math.isfinite(grid.voltage_v) and math.isfinite(grid.frequency_hz)):
        return TripVerdict(TripState(tuple(since)), None, "")
    pu, hz = grid.voltage_v / nominal_v, grid.frequency_hz
    flags = [
        ((pu if p.voltage else hz) > p.level)
        if p.over
        else ((pu if p.voltage else hz) < p.level)
        for p in points
    ]  # `beyond`, inlined: this runs every cycle
    if not any(flags) and not any(t is not None for t in since):
        # the steady case, every cycle: nothing beyond, nothing timing
        return TripVerdict(state if state.beyond_since_s else TripState(tuple(since)), None, "")
    new: list[float | None] = []
    tripped: TripPoint | None = None
    for point, started, past in zip(points, since, flags, strict=True):
        if not past:
            new.append(None)
            continue
        started = now_s if started is None else started
        new.append(started)
        if tripped is None and now_s >= started + point.clearing_s - TRIP_EPS_S:
            tripped = point
    reason = ""
    if tripped is not None:
        value = _value(tripped, grid, nominal_v)
        side = "above" if tripped.over else "below"
        if tripped.voltage:
            what = f"voltage {value:.3f} pu ({grid.voltage_v:.0f} V)"
            level = f"{tripped.level:g} pu"
        else:
            what, level = f"frequency {value:.2f} Hz", f"{tripped.level:g} Hz"
        reason = (
            f"must-trip {tripped.label}: {what} {side} {level} for its clearing time"
            f" {tripped.clearing_s:g} s"
        )
    return TripVerdict(TripState(tuple(new)), tripped, reason)


def next_trip_s(points: Sequence[TripPoint], state: TripState) -> float | None:
    """When [s] the earliest running timer will clear if the grid stays where it is (a
    drill runner cycles the controller exactly then), or None when no timer runs."""
    deadlines = [
        started + point.clearing_s
        for point, started in zip(points, state.beyond_since_s, strict=False)
        if started is not None
    ]
    return min(deadlines) if deadlines else None


def within_trip_limits(grid: GridReading, points: Sequence[TripPoint], nominal_v: float) -> bool:
    """The reading is past no must-trip point (a restart on it stays on the grid)."""
    return not any(beyond(point, grid, nominal_v) for point in points)


def enter_service_reason(grid: GridReading | None, cfg: GridSection) -> str | None:
    """Why this reading is outside the enter-service window, in words for the operator
    ("frequency 60.30 Hz above the enter-service limit 60.1 Hz"), or None inside it or
    unknown. Frequency first: a grid that is off frequency is usually also the cause."""
    if grid is None:
        return None
    f_lo, f_hi = cfg.frequency_window_hz
    v_lo, v_hi = cfg.voltage_window_pu
    hz = grid.frequency_hz
    pu = grid.voltage_v / cfg.nominal_voltage_v
    if hz > f_hi:
        return f"frequency {hz:.2f} Hz above the enter-service limit {f_hi:g} Hz"
    if hz < f_lo:
        return f"frequency {hz:.2f} Hz below the enter-service limit {f_lo:g} Hz"
    volts = f"voltage {pu:.3f} pu ({grid.voltage_v:.0f} V)"
    if pu > v_hi:
        return f"{volts} above the enter-service limit {v_hi:g} pu"
    if pu < v_lo:
        return f"{volts} below the enter-service limit {v_lo:g} pu"
    return None
