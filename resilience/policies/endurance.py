"""How long the shelter can hold out: tier loads, usable energy, hours remaining.

Owns the endurance estimate the operator sees and the emergency guards use
("can the vehicles carry the critical tier?"). Units: power [W], energy [Wh],
time [h].

The estimate is deliberately simple and pessimistic: loads count at their
rated power whether on or off (what restoring them would cost), only energy
above each owner's reserve counts, and only from vehicles still connected to
the shelter.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from resilience.model import ChargerState, LoadState, OutletState, Tier, V2LState, VehicleState


def tier_power_w(loads: Sequence[LoadState], tiers: Collection[Tier]) -> float:
    """Sum of `rated_power_w` [W] of the loads in `tiers`, on or off."""
    return sum(load.rated_power_w for load in loads if load.tier in tiers)


def _vehicle_connected(v: VehicleState) -> bool:
    return v.available and v.plugged and v.state not in (ChargerState.FAULT, ChargerState.UNPLUGGED)


def _outlet_connected(o: OutletState) -> bool:
    # A tripped outlet is still a car at the shelter: an operator can reset it.
    return o.available and o.state != V2LState.UNPLUGGED


def energy_above_reserve_wh(
    vehicles: Sequence[VehicleState], outlets: Sequence[OutletState] = ()
) -> float:
    """Energy [Wh] above the owners' reserves in the vehicles still connected.

    A vehicle counts when its charger answers, it is plugged in and the charger
    is not faulted; an outlet counts when it answers and a car is plugged in
    (a tripped outlet still counts: it can be reset). A car that drove away
    or a silent charger cannot be relied on.
    """
    vehicles_wh = sum(v.energy_above_reserve_wh for v in vehicles if _vehicle_connected(v))
    outlets_wh = sum(o.energy_above_reserve_wh for o in outlets if _outlet_connected(o))
    return vehicles_wh + outlets_wh


def endurance_h(energy_wh: float, load_w: float, pv_w: float = 0.0) -> float:
    """Hours [h] that `energy_wh` lasts feeding `load_w` [W] net of `pv_w` [W].

    `math.inf` when PV covers the load (net load <= 0). Raises ValueError on a
    negative or NaN energy, which means a bug upstream, not an empty battery.
    """
    if not energy_wh >= 0:
        raise ValueError(f"energy_wh must be >= 0, got {energy_wh}")
    net_w = load_w - pv_w
    if math.isnan(net_w):
        raise ValueError(f"load_w and pv_w must be numbers, got {load_w} and {pv_w}")
    if net_w <= 0:
        return math.inf
    return energy_wh / net_w
