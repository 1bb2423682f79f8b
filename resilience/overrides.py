"""Operator decisions that outlive a cycle: who is at each connector, tier changes, sheds.

The site file says what the site *is*; these say what the people running it have
decided since: a donor car that arrived at outlet 2 and must keep 40 % to drive
home, a load moved up a tier for tonight. They are validated here (pure), kept
in the store's state table, and read back after a restart (safety rule 5: the
field is re-read, but operator decisions are not forgotten).

Each charger and V2L outlet has one `Occupancy` (`resilience.occupancy`): the single
source of truth for which car is there and who says so, moved along by what the
connector reports (`observe`, once per cycle) and by the operators' `register` and
`release`. `vehicle_at` turns it into what decisions see (`VehicleView`): the car's
id, the reserve it keeps (100 % for a car nobody vouches for, a released one, or one
about to leave), the power it may give or take now (`policies.leaving`), and whether
it may be started as a grid-former.

Times: `leaving_at` is Unix seconds (wall clock), because a driver says "at 18:00".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from resilience import occupancy as occ
from resilience.config import SiteConfig, Vehicle
from resilience.model import Tier
from resilience.occupancy import Kind, Occupancy, OccupancyError
from resilience.policies.leaving import cap_fraction, leave_in_s, may_start_forming


@dataclass(frozen=True)
class VehicleView:
    """What decisions take for the car at a connector (see `Overrides.vehicle_at`)."""

    vehicle_id: str | None
    reserve_soc_pct: float  # [%] the reserve decisions keep: 100 when it keeps everything
    max_discharge_w: float | None = None  # [W] most it may give now; None: its rating
    max_charge_w: float | None = None  # [W] most it may take now; None: its rating
    leave_in_s: float | None = None  # [s] until its announced leaving time
    may_form: bool = True  # False: leaving too soon to be started as a grid-former


UNKNOWN_CAR = VehicleView(None, 100.0, 0.0)
"""No car, or a car nobody has vouched for: it keeps everything."""


class OverrideError(ValueError):
    """A command that the site cannot take; the message says which field and why."""


@dataclass
class Overrides:
    tiers: dict[str, Tier] = field(default_factory=dict)
    locked_off: set[str] = field(default_factory=set)
    # Loads kept on against the endurance policy (policies/energy.py); undone on reconnect.
    kept_on: set[str] = field(default_factory=set)
    occupancy: dict[str, Occupancy] = field(default_factory=dict)  # by connector
    _views: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        return {
            "tiers": {k: v.label for k, v in sorted(self.tiers.items())},
            "locked_off": sorted(self.locked_off),
            "kept_on": sorted(self.kept_on),
            "occupancy": {
                c: o.to_state()
                for c, o in sorted(self.occupancy.items())
                if o.kind is not Kind.UNKNOWN
            },
        }

    @classmethod
    def from_state(cls, data: Any, config: SiteConfig) -> Overrides:
        """Rebuild from the store, dropping anything the current site file no longer has."""
        out = cls()
        if not isinstance(data, dict):
            return out
        loads = {load.id for load in config.loads}
        connectors = set(config.chargers) | set(config.outlets)
        for load_id, label in dict(data.get("tiers", {})).items():
            if load_id in loads:
                try:
                    out.tiers[load_id] = Tier.from_label(str(label))
                except ValueError:
                    continue
        out.locked_off = {str(x) for x in data.get("locked_off", []) if str(x) in loads}
        out.kept_on = {str(x) for x in data.get("kept_on", []) if str(x) in loads}
        saved = data.get("occupancy")
        if isinstance(saved, dict):
            for connector, raw in saved.items():
                if connector in connectors:
                    restored = Occupancy.from_state(connector, raw)
                    if restored is not None:
                        out.occupancy[connector] = _still_home(restored, config)
        else:
            # Written before occupancies existed: its registered donors are donor sessions.
            for connector, raw in dict(data.get("donors", {})).items():
                donor = _legacy_donor(connector, raw) if connector in connectors else None
                if donor is not None:
                    out.occupancy[connector] = donor
        return out

    # ------------------------------------------------------------ views
    def tier_of(self, load_id: str, default: Tier) -> Tier:
        return self.tiers.get(load_id, default)

    def at(self, connector: str) -> Occupancy:
        """The connector's occupancy (unknown until its first reading)."""
        found = self.occupancy.get(connector)
        return found if found is not None else Occupancy(connector)

    @property
    def donors(self) -> dict[str, Occupancy]:
        """The donor sessions, by connector."""
        return {c: o for c, o in self.occupancy.items() if o.kind is Kind.DONOR}

    def holding(self, vehicle_id: str) -> Occupancy | None:
        """The occupancy of the connector where this car is (fleet, donor or released)."""
        for o in self.occupancy.values():
            if o.identified and o.vehicle_id == vehicle_id:
                return o
        return None

    def observe(
        self, config: SiteConfig, connector: str, plugged: bool | None, now_wall: float
    ) -> Occupancy | None:
        """A connector's reading this cycle: `plugged`, or None when it did not answer.

        Returns the new occupancy when this reading changed it (to log and persist), else
        None. Cheap when nothing changes: it runs for every connector every cycle.
        """
        if plugged is None:
            return None  # silent: unknown is not empty
        old = self.occupancy.get(connector)
        if old is not None and (old.occupied if plugged else old.kind is Kind.EMPTY):
            return None
        if old is None:
            old = Occupancy(connector)
        home = config.vehicle_at(connector)
        new = occ.observe(old, plugged, home.id if home is not None else None, now_wall)
        self.occupancy[connector] = new
        return None if new is old else new

    def vehicle_at(
        self, config: SiteConfig, connector: str, now_wall: float, *, forming: bool = False
    ) -> VehicleView:
        """What decisions take for the car at `connector` now.

        `forming`: its charger reports it forming the grid. A forming car is never capped
        for leaving (the island would collapse under it); the mode machine moves the
        island off it instead, or keeps forming when no other car can.
        """
        o = self.occupancy.get(connector)
        if o is None or o.kind in (Kind.UNKNOWN, Kind.EMPTY, Kind.UNIDENTIFIED):
            return UNKNOWN_CAR
        leave = leave_in_s(o.leaving_at, now_wall) if o.kind is Kind.DONOR else None
        cached = self._views.get(connector)
        if (
            cached is not None
            and cached[0] is o
            and cached[1] is config
            and cached[2] == forming
            and cached[3] == leave
        ):
            view: VehicleView = cached[4]
            return view
        view = _view(config, o, leave, forming)
        self._views[connector] = (o, config, forming, leave, view)
        return view

    # ------------------------------------------------------------ changes (validated)
    def set_tier(self, config: SiteConfig, load_id: str, tier: str) -> str:
        loads = {load.id: load for load in config.loads}
        if load_id not in loads:
            raise OverrideError(f"load_id: unknown load {load_id!r}")
        try:
            new = Tier.from_label(tier)
        except ValueError as exc:
            raise OverrideError(f"tier: {exc}") from None
        if new is loads[load_id].tier:
            self.tiers.pop(load_id, None)
        else:
            self.tiers[load_id] = new
        return f"{load_id} is now {new.label}"

    def register(
        self,
        config: SiteConfig,
        *,
        vehicle_id: str,
        connector: str,
        reserve_soc_pct: float,
        capacity_wh: float | None = None,
        soc_pct: float | None = None,
        leaving_at: float | None = None,
        now_wall: float,
        by: str,
    ) -> Occupancy:
        """An operator says whose car is (or is about to be) at `connector`: a donor session."""
        vehicle_id = vehicle_id.strip()
        if not vehicle_id or len(vehicle_id) > 64:
            raise OverrideError("vehicle_id: must be 1 to 64 characters")
        if connector not in config.chargers and connector not in config.outlets:
            known = ", ".join(sorted([*config.chargers, *config.outlets]))
            raise OverrideError(
                f"connector: unknown charger or outlet {connector!r} (known: {known})"
            )
        _finite("reserve_soc_pct", reserve_soc_pct, 0.0, 100.0)
        _check_local_floor(config, connector, reserve_soc_pct)
        if soc_pct is not None:
            _finite("soc_pct", soc_pct, 0.0, 100.0)
        if capacity_wh is not None:
            _finite("capacity_wh", capacity_wh, 1000.0, 300_000.0)
        if leaving_at is not None:
            _finite("leaving_at", leaving_at, now_wall, now_wall + 30 * 86400.0)
        # Any car at any connector: the operator who registers it is the authority on which
        # car is there, and the site file's home car only a default. A donor registered at a
        # home connector keeps its owner's reserve, and once it has left, the home is no
        # longer trusted (the next car there is unidentified until registered).
        other = self.holding(vehicle_id)
        if other is not None and other.connector != connector:
            raise OverrideError(f"vehicle_id: {vehicle_id!r} is already at {other.connector}")
        try:
            donor = occ.register(
                self.at(connector),
                vehicle_id=vehicle_id,
                reserve_soc_pct=float(reserve_soc_pct),
                capacity_wh=capacity_wh,
                soc_pct=soc_pct,
                leaving_at=leaving_at,
                now_wall=now_wall,
                by=by,
            )
        except OccupancyError as exc:
            raise OverrideError(str(exc)) from None
        self.occupancy[connector] = donor
        return donor

    def release(
        self, vehicle_id: str, *, former_connector: str | None, now_wall: float
    ) -> Occupancy:
        """Its driver is leaving: the car gives nothing from now until it is unplugged."""
        held = self.holding(vehicle_id)
        if held is None:
            raise OverrideError(f"vehicle_id: no registered donor vehicle {vehicle_id!r}")
        if held.kind is Kind.RELEASED:
            raise OverrideError(
                f"vehicle_id: {vehicle_id!r} at {held.connector} is already released"
            )
        if held.connector == former_connector:
            raise OverrideError(
                f"vehicle_id: {vehicle_id!r} is forming the grid at {held.connector};"
                " releasing it would black out the site (wait for reconnection or"
                " black start on another grid-former)"
            )
        released = occ.release(held, now_wall)
        self.occupancy[held.connector] = released
        return released


def _view(config: SiteConfig, o: Occupancy, leave: float | None, forming: bool) -> VehicleView:
    if o.kind is Kind.FLEET:
        home: Vehicle | None = config.vehicle_at(o.connector)
        if home is None or home.id != o.vehicle_id:
            return VehicleView(o.vehicle_id, 100.0, 0.0)
        return VehicleView(home.id, home.reserve_soc_pct, home.max_discharge_w)
    if o.kind is Kind.RELEASED:
        # Gives nothing and takes nothing: its driver may unplug it at any moment.
        return VehicleView(o.vehicle_id, 100.0, 0.0, 0.0)
    reserve = o.reserve_soc_pct if o.reserve_soc_pct is not None else 100.0
    if forming or leave is None:
        return VehicleView(o.vehicle_id, reserve, None, None, leave)
    notice = config.dispatch.leave_notice_s
    fraction = cap_fraction(leave, notice)
    if fraction <= 0.0:
        return VehicleView(o.vehicle_id, 100.0, 0.0, 0.0, leave, False)
    device = config.devices.get(o.connector)
    cap = None
    if fraction < 1.0 and device is not None and device.rating_w is not None:
        cap = fraction * device.rating_w
    return VehicleView(o.vehicle_id, reserve, cap, cap, leave, may_start_forming(leave, notice))


def _still_home(o: Occupancy, config: SiteConfig) -> Occupancy:
    """A remembered fleet car whose connector is no longer its home in the site file is
    nobody's now."""
    if o.kind is not Kind.FLEET:
        return o
    home = config.vehicle_at(o.connector)
    if home is not None and home.id == o.vehicle_id:
        return o
    return Occupancy(o.connector, Kind.UNIDENTIFIED, since=o.since, home_trusted=False)


def _legacy_donor(connector: str, raw: Any) -> Occupancy | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Occupancy(
            connector,
            Kind.DONOR,
            vehicle_id=str(raw["vehicle_id"]),
            reserve_soc_pct=float(raw["reserve_soc_pct"]),
            capacity_wh=_opt(raw.get("capacity_wh")),
            soc_pct_declared=_opt(raw.get("soc_pct_declared")),
            leaving_at=_opt(raw.get("leaving_at")),
            asserted_by=occ.Source.OPERATOR,
            asserted_actor=str(raw.get("registered_by", "")),
            asserted_at=_opt(raw.get("registered_at")),
            since=_opt(raw.get("registered_at")),
            home_trusted=False,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise OverrideError(f"{name}: {value!r} is outside {low:g}..{high:g}")


def _check_local_floor(config: SiteConfig, connector: str, reserve_soc_pct: float) -> None:
    """A station that forms by its own local configuration stops only at its own floor
    (`ocpp.local_min_soc_pct`): the controller cannot stop it sooner, so a car whose reserve
    (plus the site's margin) is above that floor is refused there (safety rule 3), as
    check-config refuses such a car in the site file."""
    device = config.devices.get(connector)
    if device is None or not device.local_former or device.ocpp is None:
        return
    stop = device.ocpp.local_min_soc_pct
    margin = config.dispatch.reserve_margin_pct
    if stop is not None and reserve_soc_pct + margin > stop:
        raise OverrideError(
            f"reserve_soc_pct: {reserve_soc_pct:g} % plus the {margin:g} % margin is above the"
            f" {stop:g} % at which {connector}'s own configuration stops it forming; the"
            " controller cannot stop it sooner: register the car at another connector"
        )
