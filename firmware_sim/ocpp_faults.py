"""OCPP station faults: what a drill, the control API or a fuzzer can break in a station.

The Modbus devices' faults live in the plant (`Plant.silence`, `Plant.fault`, ...): the
register banks answer as the plant says. An OCPP station's faults are in the simulated
station itself (`SimStation`, any version), except its hardware fault, which is the
plant charger's as for a Modbus charger:

- `link_cut`: the cable is cut; the station keeps trying to reconnect once restored
  (2.1: the dead-man drops its Dynamic profile after `maxOfflineDuration`; 2.0.1 / 1.6
  keep their last limit);
- `faulted`: the charger's internal fault (`Plant.fault`): no power, StatusNotification
  Faulted; cleared, it reports its status again and ramps back from 0;
- `rejecting`: every command of the central system is answered Rejected;
- `slow`: every call of the central system is answered `delay_s` seconds of real time
  late (the central system times its calls in real time, `[ocpp] call_timeout_s`);
- `out_of_schema`: one call whose payload breaks the version's schema (a CALLERROR is
  expected back; the station carries on).

The car leaving or arriving is the plant's (`Plant.unplug` / `Plant.plug` on the station's
connector): the station sees it and tells the central system. `clear_station_faults`
undoes all of them at once.
"""

from __future__ import annotations

from typing import Literal, get_args

from firmware_sim.ocpp_station import SimStation

__all__ = ["STATION_FAULTS", "StationFault", "clear_station_faults", "inject_station_fault"]

StationFault = Literal["link_cut", "faulted", "rejecting", "slow", "out_of_schema"]
STATION_FAULTS: tuple[str, ...] = get_args(StationFault)
MAX_DELAY_S = 60.0


def inject_station_fault(station: SimStation, kind: str, *, delay_s: float | None = None) -> str:
    """Break `station` as `kind` says; what was done, for a log. ValueError (naming the
    field) for an unknown kind or a slow fault without a delay in (0, 60] s."""
    if kind not in STATION_FAULTS:
        raise ValueError(f"kind: {kind!r} is not a station fault ({', '.join(STATION_FAULTS)})")
    if kind == "slow":
        if delay_s is None or not 0 < delay_s <= MAX_DELAY_S:
            raise ValueError(
                f"delay_s: a slow station needs a delay in (0, {MAX_DELAY_S:g}] s, not {delay_s!r}"
            )
        station.answer_delay_s = delay_s
        return f"{station.identity} answers {delay_s:g} s late"
    if delay_s is not None:
        raise ValueError(f"delay_s: only a slow station takes a delay, not {kind}")
    if kind == "link_cut":
        station.cut_link()
        return f"{station.identity}: link cut"
    if kind == "faulted":
        station.model.plant.fault(station.model.charger_id)
        return f"{station.identity}: faulted"
    if kind == "rejecting":
        station.rejecting = True
        return f"{station.identity} rejects every command"
    station.send_out_of_schema()
    return f"{station.identity} sends an out-of-schema {station.version} call"


def clear_station_faults(station: SimStation) -> str:
    """The station works again: link restored, hardware fault cleared, commands taken and
    answered at once."""
    station.restore_link()
    station.rejecting = False
    station.answer_delay_s = 0.0
    if station.model.faulted:
        station.model.plant.clear_fault(station.model.charger_id)
    return f"{station.identity}: faults cleared"
