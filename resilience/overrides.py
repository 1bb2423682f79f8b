"""Operator decisions that outlive a cycle: donor vehicles, tier changes, manual sheds.

The site file says what the site *is*; these say what the people running it have
decided since: a donor car that arrived at outlet 2 and must keep 40 % to drive
home, a load moved up a tier for tonight. They are validated here (pure), kept
in the store's state table, and read back after a restart (safety rule 5: the
field is re-read, but operator decisions are not forgotten).

Times: `leaving_at` is Unix seconds (wall clock), because a driver says "at 18:00".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from resilience.config import SiteConfig, Vehicle
from resilience.model import Tier


@dataclass(frozen=True)
class DonorVehicle:
    vehicle_id: str
    connector: str  # a bidirectional_charger or v2l_outlet id
    reserve_soc_pct: float
    capacity_wh: float | None = None
    soc_pct_declared: float | None = None  # what the driver said on arrival
    leaving_at: float | None = None  # Unix seconds
    registered_at: float = 0.0
    registered_by: str = ""


@dataclass(frozen=True)
class VehicleView:
    """The vehicle the controller believes is at a connector, from config or registration."""

    vehicle_id: str
    reserve_soc_pct: float
    max_discharge_w: float | None = None
    leaving: bool = False  # past its leaving time: keep everything it has


class OverrideError(ValueError):
    """A command that the site cannot take; the message says which field and why."""


@dataclass
class Overrides:
    tiers: dict[str, Tier] = field(default_factory=dict)
    donors: dict[str, DonorVehicle] = field(default_factory=dict)  # by connector
    locked_off: set[str] = field(default_factory=set)
    _fleet_of: SiteConfig | None = field(default=None, repr=False, compare=False)
    _fleet: dict[str, VehicleView | None] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        return {
            "tiers": {k: v.label for k, v in sorted(self.tiers.items())},
            "donors": {k: asdict(v) for k, v in sorted(self.donors.items())},
            "locked_off": sorted(self.locked_off),
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
        for connector, raw in dict(data.get("donors", {})).items():
            if connector in connectors and isinstance(raw, dict):
                try:
                    out.donors[connector] = DonorVehicle(**raw)
                except TypeError:
                    continue
        out.locked_off = {str(x) for x in data.get("locked_off", []) if str(x) in loads}
        return out

    # ------------------------------------------------------------ views
    def tier_of(self, load_id: str, default: Tier) -> Tier:
        return self.tiers.get(load_id, default)

    def vehicle_at(self, config: SiteConfig, connector: str, now_wall: float) -> VehicleView | None:
        donor = self.donors.get(connector)
        if donor is not None:
            leaving = donor.leaving_at is not None and now_wall >= donor.leaving_at
            return VehicleView(donor.vehicle_id, donor.reserve_soc_pct, None, leaving)
        # A fleet car's view comes from the site file alone: work it out once per connector.
        if self._fleet_of is not config:
            self._fleet_of, self._fleet = config, {}
        if connector not in self._fleet:
            vehicle: Vehicle | None = config.vehicle_at(connector)
            self._fleet[connector] = (
                None
                if vehicle is None
                else VehicleView(vehicle.id, vehicle.reserve_soc_pct, vehicle.max_discharge_w)
            )
        return self._fleet[connector]

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
    ) -> DonorVehicle:
        vehicle_id = vehicle_id.strip()
        if not vehicle_id or len(vehicle_id) > 64:
            raise OverrideError("vehicle_id: must be 1 to 64 characters")
        if connector not in config.chargers and connector not in config.outlets:
            known = ", ".join(sorted([*config.chargers, *config.outlets]))
            raise OverrideError(
                f"connector: unknown charger or outlet {connector!r} (known: {known})"
            )
        _finite("reserve_soc_pct", reserve_soc_pct, 0.0, 100.0)
        if soc_pct is not None:
            _finite("soc_pct", soc_pct, 0.0, 100.0)
        if capacity_wh is not None:
            _finite("capacity_wh", capacity_wh, 1000.0, 300_000.0)
        if leaving_at is not None:
            _finite("leaving_at", leaving_at, now_wall, now_wall + 30 * 86400.0)
        held = self.donors.get(connector)
        if held is not None:
            raise OverrideError(f"connector: {connector} already holds {held.vehicle_id!r}")
        configured = config.vehicle_at(connector)
        if configured is not None and configured.id != vehicle_id:
            raise OverrideError(
                f"connector: {connector} is the home of fleet vehicle {configured.id!r}"
            )
        for other in self.donors.values():
            if other.vehicle_id == vehicle_id:
                raise OverrideError(f"vehicle_id: {vehicle_id!r} is already at {other.connector}")
        donor = DonorVehicle(
            vehicle_id, connector, reserve_soc_pct, capacity_wh, soc_pct, leaving_at, now_wall, by
        )
        self.donors[connector] = donor
        return donor

    def release(self, vehicle_id: str, *, former_connector: str | None) -> DonorVehicle:
        for connector, donor in self.donors.items():
            if donor.vehicle_id == vehicle_id:
                if connector == former_connector:
                    raise OverrideError(
                        f"vehicle_id: {vehicle_id!r} is forming the grid at {connector};"
                        " releasing it would black out the site (wait for reconnection or"
                        " black start on another grid-former)"
                    )
                del self.donors[connector]
                return donor
        raise OverrideError(f"vehicle_id: no registered donor vehicle {vehicle_id!r}")


def _finite(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise OverrideError(f"{name}: {value!r} is outside {low:g}..{high:g}")
