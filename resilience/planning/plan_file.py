"""The plan file: what `resilience plan` varies, the targets it checks, what things cost.

A plan names the site file it starts from (as the user wrote it), the values to try for
each varied item, the survival targets and, optionally, unit costs. It is validated like
the site file: every problem is reported as ``file: key: reason`` (`PlanError`), and the
site file it names must itself be valid. Documented in docs/planning.md.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from resilience.config import (
    ConfigError,
    ConfigProblem,
    EnduranceTargets,
    SiteConfig,
    _key_path,
    _reason,
    load_site,
)
from resilience.model import Tier

__all__ = ["Donors", "LoadedPlan", "Plan", "PlanError", "PlanProblem", "load_plan", "parse_plan"]

Percent = Annotated[float, Field(ge=0, le=100)]
Count = Annotated[int, Field(ge=0, le=64)]
NonNegative = Annotated[float, Field(ge=0)]
HourRange = tuple[Annotated[float, Field(ge=0, le=24)], Annotated[float, Field(ge=0, le=24)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _distinct(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("give at least one value to try")
    if len(set(map(repr, values))) != len(values):
        raise ValueError("a value is given twice")
    return values


class PlanSection(_Model):
    name: str = Field(min_length=1)
    site: str = Field(min_length=1)  # the site file to start from, relative to the plan file
    profile: str = "../profile_moda_year.csv"  # hourly load and PV, relative to the plan file
    hours: Annotated[int, Field(ge=1, le=720)] = 72  # longest outage looked at [h]
    start_soc_pct: Percent = 80.0  # the fleet cars' state of charge when an outage starts
    seed: int = 0  # the drills' sample of outage starts
    drills_per_combination: Annotated[int, Field(ge=0, le=8760)] = 50


class VarySection(_Model):
    """Each item: the values to try; every combination of them is a candidate."""

    chargers: list[Annotated[int, Field(ge=1, le=64)]]  # Modbus bidirectional chargers
    grid_forming: list[Annotated[int, Field(ge=1, le=64)]]  # of which able to form the grid
    v2l_outlets: list[Count] = []  # default: the site's own
    pv_kwp: list[NonNegative] = []  # default: the site's own
    reserve_soc_pct: list[Percent] = []  # every fleet car's owner reserve; default: the site's
    # when the fleet cars are parked at the shelter: each entry a list of [start, end) hours
    # of the local day (e.g. [[0, 8], [18, 24]]: out on duty by day); default: the site's own
    fleet_hours: list[list[HourRange]] = []
    # the endurance policy's targets [h] per tier (`[dispatch.endurance_targets_h]`), each
    # entry replacing the tiers it names; default: the site's own
    endurance_targets_h: list[EnduranceTargets] = []

    @field_validator(
        "chargers",
        "grid_forming",
        "v2l_outlets",
        "pv_kwp",
        "reserve_soc_pct",
        "fleet_hours",
        "endurance_targets_h",
    )
    @classmethod
    def _values(cls, values: list[Any], info: Any) -> list[Any]:
        if info.field_name in ("chargers", "grid_forming"):
            return _distinct(values)
        return _distinct(values) if values else values

    @field_validator("fleet_hours")
    @classmethod
    def _ranges(cls, choices: list[list[HourRange]]) -> list[list[HourRange]]:
        for spans in choices:
            if not spans:
                raise ValueError("an empty list of hours: a car that is never there")
            for start, end in spans:
                if not start < end:
                    raise ValueError(f"[{start:g}, {end:g}] is not an hour range with start < end")
        return choices


class Target(_Model):
    """Carry `tier` (and every tier above it) for `hours` after `share_pct` of outage starts."""

    tier: str
    hours: Annotated[int, Field(ge=1)]
    share_pct: Annotated[float, Field(gt=0, le=100)]

    @field_validator("tier")
    @classmethod
    def _tier(cls, tier: str) -> str:
        if Tier.from_label(tier) not in (Tier.LIFE_SAFETY, Tier.CRITICAL, Tier.ESSENTIAL):
            raise ValueError("the fast model answers for life_safety, critical or essential")
        return tier


class Costs(_Model):
    """Unit costs, in any one currency (the report does not convert)."""

    currency: str = "EUR"
    charger: NonNegative = 0.0  # a bidirectional charger, installed
    grid_forming_extra: NonNegative = 0.0  # on top of a charger, for one able to form the grid
    v2l_outlet: NonNegative = 0.0
    pv_per_kwp: NonNegative = 0.0


class Donors(_Model):
    """Donor cars that arrive once the outage has started, as a distribution (seeded with
    the plan's seed): each hour a Poisson number of them (`rate_per_h`), each giving a
    normal energy above its owner's reserve (`energy_kwh`, `energy_spread_kwh`), plugged
    into the first free of `chargers` grid-following chargers kept for donors (no fleet
    car on them) and staying to the end; one that finds them all taken is turned away."""

    chargers: Annotated[int, Field(ge=1, le=64)]  # chargers kept for donors (each costs one)
    rate_per_h: Annotated[float, Field(gt=0, le=20)]  # mean arrivals per hour
    energy_kwh: Annotated[float, Field(gt=0)]  # mean energy each gives above its reserve
    energy_spread_kwh: NonNegative = 0.0  # its standard deviation
    capacity_kwh: Annotated[float, Field(ge=1, le=300)] = 77.4  # each donor's battery
    reserve_soc_pct: Annotated[float, Field(ge=0, lt=100)] = 50.0  # each owner's reserve

    @model_validator(mode="after")
    def _fits(self) -> Donors:
        room = self.capacity_kwh * (1.0 - self.reserve_soc_pct / 100.0)
        if self.energy_kwh > room:
            raise ValueError(
                f"energy_kwh {self.energy_kwh:g} is more than a {self.capacity_kwh:g} kWh car"
                f" holds above a {self.reserve_soc_pct:g} % reserve ({room:g} kWh)"
            )
        return self


class Plan(_Model):
    plan: PlanSection
    vary: VarySection
    targets: list[Target] = Field(min_length=1)
    costs: Costs | None = None
    donors: Donors | None = None


PlanProblem = ConfigProblem
"""One problem of a plan file, worded as the site file's are: `file: key: reason`."""


class PlanError(Exception):
    """A plan that cannot run; carries every problem found."""

    def __init__(self, problems: list[PlanProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedPlan:
    """A validated plan with the site file (its TOML document and its validated form)."""

    path: Path
    plan: Plan
    site_path: Path
    site_doc: dict[str, Any]
    site: SiteConfig
    profile_path: Path


def _cross_check(plan: Plan, site: SiteConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if min(plan.vary.grid_forming) > max(plan.vary.chargers):
        problems.append(("vary.grid_forming", "every value is more than the most chargers tried"))
    outlets = len(site.devices_of("v2l_outlet"))
    for i, n in enumerate(plan.vary.v2l_outlets):
        if n > outlets:
            problems.append(
                (
                    f"vary.v2l_outlets[{i}]",
                    f"{n} outlets: the site file has {outlets} to take them from",
                )
            )
    chargers = [d for d in site.devices.values() if d.driver == "bidirectional_charger"]
    if not chargers:
        problems.append(("plan.site", "the site has no bidirectional charger to copy"))
    if not any(v.charger is not None for v in site.vehicles):
        problems.append(("plan.site", "the site has no fleet car on a charger to copy"))
    for i, target in enumerate(plan.targets):
        if target.hours > plan.plan.hours:
            problems.append(
                (
                    f"targets[{i}].hours",
                    f"{target.hours} h is beyond plan.hours ({plan.plan.hours})",
                )
            )
    return problems


def parse_plan(data: dict[str, Any], path: Path) -> LoadedPlan:
    """Validate a parsed plan document; its site and profile are read relative to it."""
    file = str(path)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(
            [PlanProblem(file, _key_path(tuple(e["loc"]), data), _reason(e)) for e in exc.errors()]
        ) from None
    site_path = (path.parent / plan.plan.site).resolve()
    try:
        site = load_site(site_path)
        site_doc = tomllib.loads(site_path.read_text(encoding="utf-8-sig"))
    except ConfigError as exc:
        raise PlanError([PlanProblem(file, "plan.site", str(p)) for p in exc.problems]) from None
    profile_path = (path.parent / plan.plan.profile).resolve()
    problems = [PlanProblem(file, k, r) for k, r in _cross_check(plan, site)]
    if not profile_path.is_file():
        problems.append(PlanProblem(file, "plan.profile", f"no such file: {profile_path}"))
    if problems:
        raise PlanError(problems)
    return LoadedPlan(path, plan, site_path, site_doc, site, profile_path)


def load_plan(path: str | Path) -> LoadedPlan:
    """Read and validate a plan file; raises PlanError naming file, key and reason."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PlanError([PlanProblem(file, "(file)", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.start}: {exc.reason})"
        raise PlanError([PlanProblem(file, "(file)", reason)]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError([PlanProblem(file, "(syntax)", str(exc))]) from None
    return parse_plan(data, path)
