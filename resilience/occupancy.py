"""Which car is at each charger and V2L outlet, and who says so: one occupancy per connector.

A connector's occupancy is the single answer to "whose car is this, and what may it
give?" that the snapshot, the operators' commands, the API and the status all read.
It is a small state machine, driven by what the connector reports (plugged in or not)
and by operator commands:

    unknown ──plugged──> fleet          the site file's car for this connector (its home),
       │                                asserted by the site file
       │     ──plugged──> unidentified  nobody has said whose car it is: keeps everything
       └──unplugged──> empty

    empty ──plugged──> fleet            while the home is trusted (see below)
          ──plugged──> unidentified     otherwise, or at a connector with no home car
    any but donor ──register──> donor   an operator says whose car it is, with the
                                        owner's reserve and leaving time
    fleet | donor ──release──> released the driver is leaving: keeps everything until
                                        it is unplugged (the reserve is then 100 %)
    any occupied ──unplugged──> empty

Safety choices, and why:

* Unknown is not empty. A connector that does not answer keeps its occupancy: a
  released car is still released, a donor still a donor, when it answers again. Only
  a reading that says "unplugged" ends a session. (A car swapped while its connector
  was silent cannot be seen; an identity from the car itself, ISO 15118, would.)
* A car nobody vouches for keeps everything (reserve 100 %): an unidentified car, a
  released one, and an empty or unknown connector give nothing.
* The site file's assertion "this connector is fleet_3's home" stands for every car
  plugged in there, until a donor session is registered at the connector. From then
  on the home is no longer trusted: the car that plugs in after the session ended may
  be the donor coming back (with a higher reserve than the site file's car) or anyone,
  so it is unidentified until an operator registers it. At start-up with nothing
  remembered, the home connector's car is the site file's.
* A donor may be registered before it is plugged in (the runbook's order: the owner's
  reserve is known before the car can give anything). Such a session waits for its
  car (`car_seen` False): "unplugged" readings do not end it, the first "plugged"
  one starts it, and only an unplug after that ends it. Releasing a session whose car
  never came cancels it.

Everything here is pure: transitions take the old occupancy and return the new one.
`resilience.overrides.Overrides` keeps one per connector and persists them in the
store, so a released-but-plugged car still keeps everything after a restart.
Times are wall-clock Unix seconds (a driver says "I leave at 18:00").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What is at a connector."""

    UNKNOWN = "unknown"  # no reading yet and nothing remembered
    EMPTY = "empty"  # the connector reports no car
    UNIDENTIFIED = "unidentified"  # a car nobody has vouched for: keeps everything
    FLEET = "fleet"  # the site file's car for this connector
    DONOR = "donor"  # a car an operator registered (a donor session)
    RELEASED = "released"  # its driver is leaving: keeps everything until unplugged


class Source(StrEnum):
    """Who asserted the car's identity."""

    NONE = "none"
    SITE_FILE = "site_file"
    OPERATOR = "operator"
    VEHICLE = "vehicle"  # the car itself (ISO 15118 plug and charge; not read yet)


KEEPS_EVERYTHING = frozenset({Kind.UNKNOWN, Kind.EMPTY, Kind.UNIDENTIFIED, Kind.RELEASED})
"""Kinds whose car (if any) gives nothing: decisions see a reserve of 100 %."""

_IDENTIFIED = frozenset({Kind.FLEET, Kind.DONOR, Kind.RELEASED})


class OccupancyError(ValueError):
    """A transition the occupancy cannot take; the message names the field and why."""


@dataclass(frozen=True)
class Occupancy:
    """One connector's occupancy. `vehicle_id` and the owner's data are kept while
    released (the status still names the car); `asserted_*` say who vouched for it."""

    connector: str
    kind: Kind = Kind.UNKNOWN
    vehicle_id: str | None = None
    reserve_soc_pct: float | None = None  # the owner's (donor); a fleet car's is the site file's
    capacity_wh: float | None = None
    soc_pct_declared: float | None = None  # what the driver said on arrival
    leaving_at: float | None = None  # [Unix s] announced leaving time (donor)
    asserted_by: Source = Source.NONE
    asserted_actor: str = ""  # the operator's name for Source.OPERATOR
    asserted_at: float | None = None  # [Unix s]
    since: float | None = None  # [Unix s] of the last transition
    home_trusted: bool = True  # a car plugging in here is the site file's car (if any)
    car_seen: bool = True  # False: registered before its car was seen plugged in here

    # ------------------------------------------------------------ reading it
    @property
    def keeps_everything(self) -> bool:
        return self.kind in KEEPS_EVERYTHING

    @property
    def occupied(self) -> bool:
        """A car is (believed to be) plugged in."""
        return self.kind not in (Kind.UNKNOWN, Kind.EMPTY) and self.car_seen

    @property
    def identified(self) -> bool:
        return self.kind in _IDENTIFIED

    # ------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["asserted_by"] = self.asserted_by.value
        del data["connector"]
        return data

    @classmethod
    def from_state(cls, connector: str, data: Any) -> Occupancy | None:
        """Rebuild one connector's occupancy; None for anything malformed (it is re-read)."""
        if not isinstance(data, dict):
            return None
        try:
            fields = dict(data)
            fields["kind"] = Kind(str(fields.get("kind", Kind.UNKNOWN.value)))
            fields["asserted_by"] = Source(str(fields.get("asserted_by", Source.NONE.value)))
            occupancy = cls(connector=connector, **fields)
        except (TypeError, ValueError):
            return None
        for name in ("reserve_soc_pct", "capacity_wh", "soc_pct_declared", "leaving_at"):
            value = getattr(occupancy, name)
            if value is not None and (
                not isinstance(value, int | float) or not math.isfinite(value)
            ):
                return None
        if occupancy.kind is Kind.DONOR and (
            occupancy.vehicle_id is None or occupancy.reserve_soc_pct is None
        ):
            return None
        return occupancy


# --------------------------------------------------------------------------- transitions
def observe(
    occupancy: Occupancy, plugged: bool | None, home_id: str | None, now_wall: float
) -> Occupancy:
    """What the connector's reading says: `plugged` True, False, or None (no reading).

    `home_id` is the site file's car for this connector, if any. Returns the same object
    when nothing changes (the common case, every cycle).
    """
    if plugged is None:
        return occupancy  # silent: unknown is not empty
    kind = occupancy.kind
    if not plugged:
        if kind is Kind.EMPTY or (kind is Kind.DONOR and not occupancy.car_seen):
            return occupancy  # nothing here, or a registered donor still to come
        return Occupancy(
            occupancy.connector, Kind.EMPTY, since=now_wall, home_trusted=occupancy.home_trusted
        )
    if occupancy.occupied:
        return occupancy
    if kind in (Kind.DONOR, Kind.RELEASED):
        return replace(occupancy, car_seen=True, since=now_wall)  # its car arrived
    if home_id is not None and occupancy.home_trusted:
        return Occupancy(
            occupancy.connector,
            Kind.FLEET,
            vehicle_id=home_id,
            asserted_by=Source.SITE_FILE,
            asserted_at=now_wall,
            since=now_wall,
        )
    return Occupancy(
        occupancy.connector,
        Kind.UNIDENTIFIED,
        since=now_wall,
        home_trusted=occupancy.home_trusted,
    )


def register(
    occupancy: Occupancy,
    *,
    vehicle_id: str,
    reserve_soc_pct: float,
    capacity_wh: float | None,
    soc_pct: float | None,
    leaving_at: float | None,
    now_wall: float,
    by: str,
) -> Occupancy:
    """An operator says whose car is (or is about to be) at the connector: a donor session.

    The connector's home (if any) is no longer trusted once a donor session was there.
    """
    connector = occupancy.connector
    if occupancy.kind is Kind.DONOR:
        raise OccupancyError(f"connector: {connector} already holds {occupancy.vehicle_id!r}")
    return Occupancy(
        connector,
        Kind.DONOR,
        vehicle_id=vehicle_id,
        reserve_soc_pct=reserve_soc_pct,
        capacity_wh=capacity_wh,
        soc_pct_declared=soc_pct,
        leaving_at=leaving_at,
        asserted_by=Source.OPERATOR,
        asserted_actor=by,
        asserted_at=now_wall,
        since=now_wall,
        home_trusted=False,
        car_seen=occupancy.occupied,
    )


def release(occupancy: Occupancy, now_wall: float) -> Occupancy:
    """The driver is leaving: from now until it is unplugged the car gives nothing."""
    if occupancy.kind not in (Kind.FLEET, Kind.DONOR):
        raise OccupancyError(
            f"vehicle_id: {occupancy.vehicle_id!r} at {occupancy.connector} is {occupancy.kind},"
            " not a fleet or donor car that can be released"
        )
    return replace(occupancy, kind=Kind.RELEASED, since=now_wall)


def describe(occupancy: Occupancy) -> str:
    """One line for the event log: what is at the connector now."""
    c = occupancy.connector
    kind = occupancy.kind
    if kind is Kind.EMPTY:
        return f"{c}: no car plugged in"
    if kind is Kind.UNKNOWN:
        return f"{c}: not read yet"
    if kind is Kind.UNIDENTIFIED:
        return f"{c}: a car plugged in that nobody has identified; it keeps everything"
    if kind is Kind.FLEET:
        return f"{c}: {occupancy.vehicle_id} plugged in (the site file's car for {c})"
    if kind is Kind.DONOR:
        by = occupancy.asserted_actor or "an operator"
        keeps = occupancy.reserve_soc_pct
        told = f"{occupancy.vehicle_id} registered by {by}, keeps {keeps:g} %"
        return f"{c}: {told}" if occupancy.car_seen else f"{c}: waiting for {told}"
    if not occupancy.car_seen:
        return f"{c}: registration of {occupancy.vehicle_id} cancelled before it arrived"
    return f"{c}: {occupancy.vehicle_id} released; it keeps everything until unplugged"
