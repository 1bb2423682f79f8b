"""A car whose driver said when they leave: wind its connector down before then.

A car must be giving nothing when it is unplugged: a V2L circuit whose outlet opens
under load drops all its loads at once (life-safety first among them), and a DC
charger unplugged mid-discharge faults and throws its share onto the grid-former in
one step. So a connector with an announced leaving time T is capped, at wall time t,
to a fraction of its rating (`cap_fraction`, both directions on a DC charger):

    1                                  until T - notice
    falling linearly to 0              from T - notice to T - notice/2
    0 (the car keeps everything)       from T - notice/2 on

with notice = `dispatch.leave_notice_s` (600 s by default). The cap flows into the
snapshot (`VehicleState.max_discharge_w` / `max_charge_w`, `OutletState.rating_w`) and
the existing dispatch does the rest: `allocate_power` hands a DC car's share to the
others as its limit falls, and a V2L circuit's plan sheds lowest first to fit the
outlet's falling rating, one load each time the rating crosses the circuit's demand
plus the shed margin (overload sheds ignore min_on_s, restores never fit under a
falling supply), until at 0 the outlet is opened with its circuit already shed.

Why these numbers: the ramp half (notice/2, 300 s) spreads a V2L circuit's sheds over
minutes (the reference site's v2l_1 sheds its 2 kW urn, its lights and its fridge about
575, 405 and 365 s before T, each measured gone before the next, and opens the outlet
at 300 s), and moves an 11 kW DC share at ~37 W/s, far slower than a former's step
response; the quiet half is slack for a driver who comes back up to notice/2 early.
Past T the car still keeps everything until it is unplugged.

The grid-former is the exception: it is never capped while it forms (the island would
collapse). The island moves off it with a black start on another former once T is
less than the notice away (`modes.g_former_leaving`); a car leaving within twice the
notice is not chosen to start forming (`may_start_forming`); and when no other former
exists, `former_leaving_message` words a critical alarm twice the notice ahead (the
supervisor raises it) while the island keeps forming on the leaving car.
Units: seconds, watts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from resilience.config import DispatchSection
from resilience.model import ChargerState, VehicleState
from resilience.policies.vehicles import choose_former

FORMER_LEAD = 2.0
"""A leaving car is not started as a grid-former, and a former with no replacement is
alarmed, this many notices before its leaving time."""


def leave_in_s(leaving_at: float | None, now_wall: float) -> float | None:
    """Whole seconds [s] until `leaving_at` (negative once past), rounded down so it is
    never more time than there is; None when no leaving time was given.

    Whole seconds keep a connector's state steady between two seconds, so the snapshot
    reuses it (it changes once a second, not once a cycle)."""
    if leaving_at is None:
        return None
    return float(math.floor(leaving_at - now_wall))


def cap_fraction(leave_in: float | None, notice_s: float) -> float:
    """The fraction (0..1) of its rating a connector may give or take now."""
    if leave_in is None or leave_in >= notice_s:
        return 1.0
    end_s = notice_s / 2.0
    if leave_in <= end_s:
        return 0.0
    return (leave_in - end_s) / (notice_s - end_s)


def may_start_forming(leave_in: float | None, notice_s: float) -> bool:
    """Whether a car may be chosen to start forming the island: not one leaving soon."""
    return leave_in is None or leave_in > FORMER_LEAD * notice_s


def former_leaving_message(vehicles: Sequence[VehicleState], cfg: DispatchSection) -> str | None:
    """The `former_leaving` alarm's message when the island's grid-former leaves within
    twice the notice and no other vehicle could take over; None otherwise."""
    for v in vehicles:
        if not (v.available and v.state is ChargerState.FORMING and v.leave_in_s is not None):
            continue
        if v.leave_in_s > FORMER_LEAD * cfg.leave_notice_s:
            continue
        if choose_former(vehicles, cfg, frozenset({v.charger_id})) is not None:
            continue
        who = v.vehicle_id or "its car"
        when = f"in {v.leave_in_s / 60:.0f} min" if v.leave_in_s > 0 else "now (past its time)"
        return (
            f"grid-former {v.charger_id} ({who}) is due to leave {when} and no other vehicle"
            " can form the grid: the island collapses when it is unplugged; ask the driver"
            " to wait, or bring another grid-forming car"
        )
    return None
