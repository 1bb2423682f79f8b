"""The drill matrix: every built-in scenario on every site of config/sites/, judged by the plant.

The built-in scenarios (config/drills/*.toml) are written for the reference site
(config/site.toml): they name its chargers, outlets, panels, vehicles and loads.
`variant()` rewrites one for another site by role, not by name:

- the grid-forming chargers in file order (the reference's charger_1, charger_2),
  the grid-following ones (charger_3, charger_4), the V2L outlets (v2l_1, v2l_2), the
  PV inverters, the meter and the breaker map to the other site's in the same order;
- the main panel is the one that switches the most loads on the bus, the V2L panel
  the one that switches the most V2L circuit loads (it may be the same panel);
- a vehicle is the one parked at the mapped connector; where the other site parks
  none, an arriving car is a visitor with the reference car's capacity;
- an operator shedding a load the other site lacks (the earthquake's comfort loads)
  sheds every comfort load on the other site's bus instead;
- an event naming something the other site has no counterpart for (charger_4 on a
  two-charger site) is dropped, and listed in the test's output.

Some sites start a drill in a particular state (`START`): the tiny site's grid-former
is parked close to its reserve, as its site file says.

Each run is the in-process drill (`firmware_sim.drill.run_max`: the real controller on
the virtual clock against the plant). The verdict is the plant's: no violation
recorded. (A scenario's own pass criteria are written for the reference site, e.g.
its unserved-energy limits, and are not asserted here; `test_runs.py` asserts them
there.)

Budget: CI runs the matrix with the long scenarios cut short (`CI_DURATION`, as
test_runs.py cuts the 72 h earthquake); ``RESILIENCE_DRILL_MATRIX=full`` runs every
scenario for its whole duration:

    RESILIENCE_DRILL_MATRIX=full .venv/bin/pytest tests/drills/test_matrix.py -q
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from firmware_sim import drill
from resilience import cli
from resilience.config import SiteConfig, load_site
from resilience.drills.scenario import LoadedScenario, parse_scenario, parse_span
from resilience.model import Tier
from tests.sites import pending_problems

REPO = Path(__file__).resolve().parents[2]
DRILLS = REPO / "config" / "drills"
REFERENCE = load_site(REPO / "config" / "site.toml")
SITES = sorted((REPO / "config" / "sites").glob("*.toml"))
SCENARIOS = sorted(DRILLS.glob("*.toml"))
FULL = os.environ.get("RESILIENCE_DRILL_MATRIX") == "full"

CI_DURATION: dict[str, str] = {
    # the long ones in CI: the first hours, which hold every kind of event but the
    # late vehicle swaps (the full matrix runs them whole)
    "earthquake_72h": "6h",
    "storm_cap_alert": "14h",
    # the endurance policy's drills: their first hours hold the sheds (test_runs-style
    # criteria for them are in test_energy_drills.py, on their own sites)
    "long_outage_energy": "2h",
    "tiny_site_energy": "1h",
}
START: dict[str, dict[str, float]] = {
    # site -> per-role start: "former_soc_above_reserve_pct": every grid-former's car
    # starts this far above its reserve [%]
    "tiny_site": {"former_soc_above_reserve_pct": 5.0},
}


@dataclass(frozen=True)
class Variant:
    data: dict[str, Any]
    dropped: list[str]


# --------------------------------------------------------------------------- roles
def _main_panel(site: SiteConfig, on_bus: bool) -> str | None:
    counts: dict[str, int] = {}
    for load in site.loads:
        if (load.supply == "bus") == on_bus:
            counts[load.panel] = counts.get(load.panel, 0) + 1
    return max(counts, key=lambda p: counts[p]) if counts else None


def device_roles(reference: SiteConfig, site: SiteConfig) -> dict[str, str | None]:
    """Reference device id -> the other site's device in the same role (None: none)."""
    mapping: dict[str, str | None] = {}

    def pair(ours: list[str], theirs: list[str]) -> None:
        for i, name in enumerate(ours):
            mapping[name] = theirs[i] if i < len(theirs) else None

    def formers(s: SiteConfig, forming: bool) -> list[str]:
        return [n for n, d in s.chargers.items() if d.can_form == forming]

    pair(formers(reference, True), formers(site, True))
    pair(formers(reference, False), formers(site, False))
    pair(list(reference.outlets), list(site.outlets))
    pair(list(reference.pv_inverters), list(site.pv_inverters))
    mapping[reference.grid.meter] = site.grid.meter
    mapping[reference.grid.pcc_breaker] = site.grid.pcc_breaker
    for on_bus in (True, False):
        ours = _main_panel(reference, on_bus)
        if ours is not None:
            mapping[ours] = _main_panel(site, on_bus)
    return mapping


def variant(scenario: Path, site_path: Path) -> Variant:
    """The scenario rewritten for the site at `site_path` (see the module docstring)."""
    site = load_site(site_path)
    data = copy.deepcopy(tomllib.loads(scenario.read_text(encoding="utf-8")))
    data["scenario"]["site"] = str(site_path)
    devices = device_roles(REFERENCE, site)
    vehicles: dict[str, str | None] = {}
    capacity: dict[str, float] = {}
    for ref_vehicle in REFERENCE.vehicles:
        home = devices.get(ref_vehicle.charger or ref_vehicle.outlet or "")
        theirs = site.vehicle_at(home) if home is not None else None
        vehicles[ref_vehicle.id] = theirs.id if theirs is not None else None
        capacity[ref_vehicle.id] = ref_vehicle.capacity_wh
    site_ids = {v.id for v in site.vehicles}
    comfort = [ld.id for ld in site.loads if ld.tier is Tier.COMFORT and ld.supply == "bus"]
    load_ids = {ld.id for ld in site.loads}
    dropped: list[str] = []

    initial = data.setdefault("initial", {})
    for key in ("soc_pct", "max_discharge_w", "reserve_soc_pct"):
        if key in initial:
            initial[key] = {
                vehicles[v]: x for v, x in initial[key].items() if vehicles.get(v) is not None
            }
    if "absent" in initial:
        initial["absent"] = [vehicles[v] for v in initial["absent"] if vehicles.get(v)]

    events: list[dict[str, Any]] = []
    replaced_sheds = False
    shed: set[tuple[Any, str]] = set()  # (at, load id): each load shed once at a time
    for event in data.get("events", []):
        where = f"{event['kind']} at {event['at']}"
        missing = [
            f"{key} {event[key]}"
            for key in ("connector", "device")
            if key in event and devices.get(event[key]) is None
        ]
        if missing:
            dropped.append(f"{where} ({', '.join(missing)}: no counterpart)")
            continue
        for key in ("connector", "device"):
            if key in event:
                event[key] = devices[event[key]]
        if event["kind"] == "vehicle_arrives":
            theirs = site.vehicle_at(event["connector"])
            ref_id = event["vehicle"]
            if theirs is not None:
                event["vehicle"] = theirs.id
            else:
                event.setdefault("capacity_wh", capacity.get(ref_id, 77400.0))
                if ref_id in site_ids:
                    event["vehicle"] = f"visitor_{ref_id}"
        if event["kind"] == "load_change" and "load" in event and event["load"] not in load_ids:
            dropped.append(f"{where} (load {event['load']}: not on this site)")
            continue
        if event["kind"] == "command" and "load_id" in event.get("args", {}):
            load_id = event["args"]["load_id"]
            if load_id not in load_ids:
                if event["command"] != "shed_load":
                    dropped.append(f"{where} ({event['command']} {load_id}: not on this site)")
                    continue
                if not replaced_sheds:
                    replaced_sheds = True
                    for other in comfort:
                        if (event["at"], other) not in shed:
                            shed.add((event["at"], other))
                            events.append({**event, "args": {"load_id": other}})
                continue
            if event["command"] == "shed_load":
                if (event["at"], load_id) in shed:
                    continue
                shed.add((event["at"], load_id))
        events.append(event)
    data["events"] = events

    start = START.get(site_path.stem, {})
    above = start.get("former_soc_above_reserve_pct")
    if above is not None:
        socs = initial.setdefault("soc_pct", {})
        for name, device in site.chargers.items():
            parked = site.vehicle_at(name)
            if device.can_form and parked is not None:
                socs[parked.id] = parked.reserve_soc_pct + above
    return Variant(data, dropped)


def load_variant(scenario: Path, site_path: Path) -> tuple[LoadedScenario, list[str]]:
    made = variant(scenario, site_path)
    # parsed as if it sat beside the original, so that its CAP alert files are found
    return parse_scenario(made.data, scenario), made.dropped


# --------------------------------------------------------------------------- the matrix
@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    level = logging.getLogger("resilience").level
    yield
    logging.getLogger("resilience").setLevel(level)


def test_every_site_file_is_in_the_matrix() -> None:
    assert {p.stem for p in SITES} >= {"us_site", "tiny_site", "large_site", "rural_clinic_rtu"}
    assert len(SCENARIOS) >= 6


@pytest.mark.parametrize("site_path", SITES, ids=[p.stem for p in SITES])
def test_site_file_passes_check_config(site_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", str(site_path)]) == 0
    assert capsys.readouterr().out.startswith(f"{site_path}: ok (")
    assert pending_problems(load_site(site_path)) == []


def test_roles_map_the_reference_onto_itself() -> None:
    roles = device_roles(REFERENCE, REFERENCE)
    assert all(ours == theirs for ours, theirs in roles.items()), roles


def test_variants_load_on_every_site() -> None:
    """Every variant is a valid scenario for its site (parse_scenario cross-checks each
    device, connector, vehicle and load it names)."""
    for site_path in SITES:
        for scenario in SCENARIOS:
            loaded, _ = load_variant(scenario, site_path)
            assert loaded.site_path == site_path


KNOWN: dict[str, str] = {
    # site-scenario -> what the controller cannot do yet; an xfail until it can
    # (large_site x storm_cap_alert passes since the endurance policy: comfort is shed for
    # energy before its 11 h load step. The former still keeps no step reserve for loads
    # measured below their rating that return to it together; see the issue 11 note.)
}


def _param(site: Path, scenario: Path) -> Any:
    name = f"{site.stem}-{scenario.stem}"
    reason = KNOWN.get(name)
    marks = [pytest.mark.xfail(strict=False, reason=reason)] if reason else []
    return pytest.param(site, scenario, id=name, marks=marks)


MATRIX = [_param(site, scenario) for site in SITES for scenario in SCENARIOS]


@pytest.mark.parametrize(("site_path", "scenario"), MATRIX)
def test_drill_on_site(tmp_path: Path, site_path: Path, scenario: Path) -> None:
    loaded, dropped = load_variant(scenario, site_path)
    cut = None if FULL else CI_DURATION.get(scenario.stem)
    duration = float(parse_span(cut)) if cut is not None else None
    report = asyncio.run(drill.run_max(loaded, tmp_path, duration_s=duration, progress=False))
    failed = [c["name"] for c in report["criteria"] if not c["passed"]]
    print(
        f"{site_path.stem} x {scenario.stem}: {report['sim_seconds']:.0f} s simulated in"
        f" {report['wall_seconds']:.2f} s; final mode {report['final_mode']};"
        f" scenario criteria not met here: {failed or 'none'}; dropped: {dropped or 'none'}"
    )
    assert report["safety_violations"] == [], report["safety_violations"]
