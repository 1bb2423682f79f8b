"""resilience.config: the reference site file, and one small named case per problem.

Negative cases start from the parsed reference file, change one thing (deep copy,
mutate) and check that `parse_site` names the right key path and reason.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from resilience.config import (
    ConfigError,
    ConfigProblem,
    SiteConfig,
    load_site,
    parse_site,
)
from resilience.model import Tier

SITE_FILE = Path(__file__).resolve().parent.parent / "config" / "site.toml"
FILE = "site.toml"

Mutation = Callable[[dict[str, Any]], None]


def reference() -> dict[str, Any]:
    with SITE_FILE.open("rb") as f:
        return tomllib.load(f)


REFERENCE = reference()


def _walk(data: Any, path: str) -> tuple[Any, str | int]:
    """The container holding `path` ("devices.pv.port", "loads[3].tier") and its last key."""
    parts: list[str | int] = []
    for name in path.split("."):
        match = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", name)
        assert match, name
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    for part in parts[:-1]:
        data = data[part]
    return data, parts[-1]


GRID_60HZ = {
    "nominal_voltage_v": 480.0,
    "nominal_frequency_hz": 60.0,
    "connection_kva": 100.0,
    "meter": "grid_meter",
    "pcc_breaker": "pcc_breaker",
}


def set_(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        container, key = _walk(data, path)
        container[key] = value

    return mutate


def delete(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        container, key = _walk(data, path)
        del container[key]

    return mutate


def rename(path: str, new_name: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        container, key = _walk(data, path)
        container[new_name] = container.pop(key)

    return mutate


def all_of(*mutations: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


def problems_after(*mutations: Mutation) -> list[ConfigProblem]:
    data = copy.deepcopy(REFERENCE)
    for mutation in mutations:
        mutation(data)
    with pytest.raises(ConfigError) as caught:
        parse_site(data, FILE)
    assert caught.value.problems, "a ConfigError must carry its problems"
    return caught.value.problems


def parses_after(*mutations: Mutation) -> SiteConfig:
    data = copy.deepcopy(REFERENCE)
    for mutation in mutations:
        mutation(data)
    return parse_site(data, FILE)


def load_index(load_id: str) -> int:
    return next(i for i, load in enumerate(REFERENCE["loads"]) if load["id"] == load_id)


def vehicle_index(vehicle_id: str) -> int:
    return next(i for i, v in enumerate(REFERENCE["vehicles"]) if v["id"] == vehicle_id)


def load_key(load_id: str) -> str:
    """How problems name a load: its index and its id."""
    return f"loads[{load_index(load_id)}] ({load_id})"


def vehicle_key(vehicle_id: str) -> str:
    return f"vehicles[{vehicle_index(vehicle_id)}] ({vehicle_id})"


# ---------------------------------------------------------------- the reference site


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(SITE_FILE)


def test_reference_site_is_valid(site: SiteConfig) -> None:
    assert site.site.name
    assert parse_site(reference(), FILE) == site


def test_reference_grid_connection(site: SiteConfig) -> None:
    assert site.grid.connection_kva == 100.0
    assert site.grid.nominal_frequency_hz == 50.0
    assert site.grid.nominal_voltage_v == 400.0
    assert site.grid.return_to_service_s == 300.0
    assert site.grid.voltage_window_pu == (0.917, 1.05)
    assert site.devices[site.grid.meter].driver == "sunspec_meter"
    assert site.devices[site.grid.pcc_breaker].driver == "pcc_breaker"


def test_reference_sync_limits(site: SiteConfig) -> None:
    assert site.sync.max_frequency_diff_hz == 0.3
    assert site.sync.max_voltage_diff_pct == 10.0
    assert site.sync.max_phase_diff_deg == 20.0


def test_reference_bus_loads_cover_every_tier(site: SiteConfig) -> None:
    bus_loads = [load for load in site.loads if load.supply == "bus"]
    assert len(bus_loads) >= 14
    assert {load.tier for load in bus_loads} == set(Tier)


def test_reference_v2l_loads_are_fed_by_outlets(site: SiteConfig) -> None:
    for load in site.loads:
        if load.supply != "bus":
            assert load.supply in site.outlets


def test_reference_chargers(site: SiteConfig) -> None:
    chargers = site.chargers
    assert len(chargers) == 6  # four Modbus chargers and two OCPP 2.1 stations
    assert {n for n, c in chargers.items() if c.driver == "ocpp"} == {"ocpp_1", "ocpp_2"}
    assert all(c.charger_role == "follower" for c in site.ocpp_stations.values())
    assert all(c.rating_w == 11_000.0 for c in chargers.values())
    assert any(c.can_form for c in chargers.values())
    assert all(site.vehicle_at(name) is not None for name in chargers)


def test_reference_v2l_outlets(site: SiteConfig) -> None:
    outlets = site.outlets
    assert len(outlets) == 2
    assert all(o.rating_w == 3_600.0 for o in outlets.values())
    assert all(site.vehicle_at(name) is not None for name in outlets)


def test_reference_pv_inverter(site: SiteConfig) -> None:
    assert [d.rating_w for d in site.pv_inverters.values()] == [20_000.0]


def test_reference_vehicles_keep_a_reserve(site: SiteConfig) -> None:
    assert site.vehicles
    assert all(0 < v.reserve_soc_pct < 100 for v in site.vehicles)


def test_reference_timeouts_are_what_real_devices_can_meet(site: SiteConfig) -> None:
    polled = [d for d in site.devices.values() if d.driver != "ocpp"]
    assert all(d.timeout_s >= d.least_timeout_s for d in polled)
    # the devices read every cycle fit in it; the PV inverter needs a whole second
    meter, pcc = site.devices["grid_meter"], site.devices["pcc_breaker"]
    assert max(meter.timeout_s, pcc.timeout_s) < site.site.cycle_period_s
    assert site.devices["pv"].timeout_s == 1.0


# ---------------------------------------------------------------- one problem each

LIGHTING = load_index("emergency_lighting")  # panel_main channel 0, life_safety
RADIO = load_index("radio_comms")  # panel_main channel 1
CLINIC_FRIDGE = load_index("field_clinic_fridge")  # panel_v2l channel 0, supply v2l_1
FLEET_1 = vehicle_index("fleet_1")  # charger_1
FLEET_2 = vehicle_index("fleet_2")  # charger_2
DONOR_1 = vehicle_index("donor_v2l_1")  # v2l_1
LIGHTING_AT = load_key("emergency_lighting")
RADIO_AT = load_key("radio_comms")
CLINIC_FRIDGE_AT = load_key("field_clinic_fridge")
FLEET_1_AT = vehicle_key("fleet_1")
FLEET_2_AT = vehicle_key("fleet_2")
DONOR_1_AT = vehicle_key("donor_v2l_1")

CASES: list[tuple[str, Mutation, str, str]] = [
    # unknown or wrong devices referenced
    ("grid meter unknown", set_("grid.meter", "nope"), "grid.meter", "unknown device 'nope'"),
    (
        "grid meter is not a meter",
        set_("grid.meter", "pcc_breaker"),
        "grid.meter",
        "device 'pcc_breaker' is a pcc_breaker, not a sunspec_meter",
    ),
    (
        "pcc breaker unknown",
        set_("grid.pcc_breaker", "breaker_9"),
        "grid.pcc_breaker",
        "unknown device 'breaker_9'",
    ),
    (
        "load panel unknown",
        set_(f"loads[{LIGHTING}].panel", "panel_x"),
        f"{LIGHTING_AT}.panel",
        "unknown device 'panel_x'",
    ),
    (
        "load panel is not a panel",
        set_(f"loads[{LIGHTING}].panel", "charger_1"),
        f"{LIGHTING_AT}.panel",
        "device 'charger_1' is not a load_panel",
    ),
    (
        "load supply unknown",
        set_(f"loads[{CLINIC_FRIDGE}].supply", "v2l_9"),
        f"{CLINIC_FRIDGE_AT}.supply",
        "unknown device 'v2l_9'",
    ),
    (
        "load supply is not an outlet",
        set_(f"loads[{CLINIC_FRIDGE}].supply", "charger_1"),
        f"{CLINIC_FRIDGE_AT}.supply",
        "device 'charger_1' is a bidirectional_charger, not a v2l_outlet",
    ),
    (
        "vehicle charger unknown",
        set_(f"vehicles[{FLEET_1}].charger", "charger_9"),
        f"{FLEET_1_AT}.charger",
        "unknown device 'charger_9'",
    ),
    (
        "vehicle outlet unknown",
        set_(f"vehicles[{DONOR_1}].outlet", "v2l_9"),
        f"{DONOR_1_AT}.outlet",
        "unknown device 'v2l_9'",
    ),
    # duplicates
    (
        "duplicate port and unit id",
        set_("devices.charger_2.port", 15031),
        "devices.charger_2.port",
        "duplicate endpoint 127.0.0.1:15031 unit id 1 (also used by devices.charger_1)",
    ),
    (
        "two loads on one relay",
        set_(f"loads[{RADIO}].channel", 0),
        f"{RADIO_AT}.channel",
        "panel_main channel 0 already switches 'emergency_lighting'",
    ),
    (
        "two vehicles at one charger",
        set_(f"vehicles[{FLEET_2}].charger", "charger_1"),
        f"{FLEET_2_AT}.charger",
        "'charger_1' already holds vehicle 'fleet_1'",
    ),
    # panels and channels
    (
        "channel beyond the panel",
        set_(f"loads[{CLINIC_FRIDGE}].channel", 9),
        f"{CLINIC_FRIDGE_AT}.channel",
        "channel 9 is beyond panel 'panel_v2l' (8 channels)",
    ),
    (
        "channel beyond any panel",
        set_(f"loads[{LIGHTING}].channel", 16),
        f"{LIGHTING_AT}.channel",
        "Input should be less than or equal to 15",
    ),
    (
        "negative channel",
        set_(f"loads[{LIGHTING}].channel", -1),
        f"{LIGHTING_AT}.channel",
        "Input should be greater than or equal to 0",
    ),
    # tiers
    (
        "load without tier",
        delete(f"loads[{LIGHTING}].tier"),
        f"{LIGHTING_AT}.tier",
        "required key is missing",
    ),
    (
        "bad tier label",
        set_(f"loads[{LIGHTING}].tier", "vip"),
        f"{LIGHTING_AT}.tier",
        "unknown tier 'vip' (expected one of: life_safety, critical, essential, comfort)",
    ),
    (
        "tier given as a number",
        set_(f"loads[{LIGHTING}].tier", 0),
        f"{LIGHTING_AT}.tier",
        "expected a tier label, one of: life_safety, critical, essential, comfort",
    ),
    (
        "empty tier label",
        set_(f"loads[{LIGHTING}].tier", ""),
        f"{LIGHTING_AT}.tier",
        "unknown tier ''",
    ),
    # power and ratings
    (
        "negative load power",
        set_(f"loads[{LIGHTING}].rated_power_w", -800.0),
        f"{LIGHTING_AT}.rated_power_w",
        "Input should be greater than 0",
    ),
    (
        "zero load power",
        set_(f"loads[{LIGHTING}].rated_power_w", 0),
        f"{LIGHTING_AT}.rated_power_w",
        "Input should be greater than 0",
    ),
    (
        "load larger than the grid connection",
        set_(f"loads[{LIGHTING}].rated_power_w", 150_000.0),
        f"{LIGHTING_AT}.rated_power_w",
        "larger than the grid connection",
    ),
    (
        "zero charger rating",
        set_("devices.charger_1.rating_w", 0),
        "devices.charger_1.rating_w",
        "Input should be greater than 0",
    ),
    (
        "negative charger rating",
        set_("devices.charger_1.rating_w", -11_000.0),
        "devices.charger_1.rating_w",
        "Input should be greater than 0",
    ),
    (
        "absurd charger rating",
        set_("devices.charger_1.rating_w", 5e6),
        "devices.charger_1.rating_w",
        "5000000.0 W is beyond any bidirectional_charger (32000.0 W)",
    ),
    (
        "slip that can never pass the sync check",
        set_("sync.slip_frequency_hz", 0.3),
        "sync.slip_frequency_hz",
        "0.3 Hz must be below sync.max_frequency_diff_hz (0.3 Hz),"
        " or resynchronisation never passes",
    ),
    (
        "the old ride-through setting",
        set_("grid.ride_through_s", 0.2),
        "grid.ride_through_s",
        "replaced by the must-trip table (grid.trip_table, [grid.trip]): the grid is ridden"
        " through inside it; remove this key (see docs/grid-trip.md)",
    ),
    (
        "unknown trip table",
        set_("grid.trip_table", "ieee1547_cat9"),
        "grid.trip_table",
        "Input should be 'ieee1547_cat2', 'ieee1547_cat3' or 'en50549'",
    ),
    (
        "a frequency on a voltage trip point",
        set_("grid.trip", {"ov1": {"hz": 51.0}}),
        "grid.trip.ov1.hz",
        "unknown key",
    ),
    (
        "an unknown trip point",
        set_("grid.trip", {"ov3": {"pu": 1.3}}),
        "grid.trip.ov3",
        "unknown key",
    ),
    (
        "a clearing time of zero",
        set_("grid.trip", {"uf1": {"clearing_s": 0.0}}),
        "grid.trip.uf1.clearing_s",
        "Input should be greater than 0",
    ),
    (
        "stage 2 not beyond stage 1",
        set_("grid.trip", {"uv2": {"pu": 0.9}}),
        "grid.trip.uv2",
        "UV2 0.9 pu (0.1 s) must be below UV1 0.85 pu (0.3 s) (stage 2 beyond stage 1, both"
        " beyond nominal)",
    ),
    (
        "a deeper stage that waits longer",
        set_("grid.trip", {"of2": {"clearing_s": 1.0}}),
        "grid.trip.of2",
        "OF2 52 Hz (1 s) waits longer than OF1 51.5 Hz (0.1 s): a deeper excursion must clear"
        " no later",
    ),
    (
        "an enter-service window beyond a trip point",
        set_("grid.trip", {"of1": {"hz": 50.3}}),
        "grid.frequency_window_hz",
        "[49.5, 50.5] must lie inside the must-trip points UF1 47.5 Hz (0.1 s) and OF1 50.3 Hz"
        " (0.1 s): the enter-service window is where the site may reconnect",
    ),
    (
        "the European table on a 60 Hz site",
        set_("grid", {**GRID_60HZ, "trip_table": "en50549"}),
        "grid.trip_table",
        "en50549 is a table for 50 Hz sites; this site is 60 Hz (use ieee1547_cat2 or"
        " ieee1547_cat3)",
    ),
    (
        "absurd v2l rating",
        set_("devices.v2l_1.rating_w", 50_000.0),
        "devices.v2l_1.rating_w",
        "50000.0 W is beyond any v2l_outlet (22000.0 W)",
    ),
    (
        "infinite pv rating",
        set_("devices.pv.rating_w", float("inf")),
        "devices.pv.rating_w",
        "Input should be a finite number",
    ),
    (
        "charger without rating",
        delete("devices.charger_3.rating_w"),
        "devices.charger_3.rating_w",
        "a bidirectional_charger needs rating_w",
    ),
    (
        "pv inverter without rating",
        delete("devices.pv.rating_w"),
        "devices.pv.rating_w",
        "a sunspec_inverter needs rating_w",
    ),
    (
        "zero grid connection",
        set_("grid.connection_kva", 0),
        "grid.connection_kva",
        "Input should be greater than 0",
    ),
    # timing
    (
        "timeout longer than the device's own period",
        set_("devices.pv.timeout_s", 1.5),
        "devices.pv.timeout_s",
        "timeout 1.5 s is longer than the device's read period 1 s (and ten cycles)",
    ),
    (
        "grid meter timeout longer than ten cycles",
        set_("devices.grid_meter.timeout_s", 1.0),
        "devices.grid_meter.timeout_s",
        "longer than the device's read period 0.02 s (and ten cycles)",
    ),
    (
        "poll period shorter than the cycle",
        set_("devices.panel_main.poll_period_s", 0.01),
        "devices.panel_main.poll_period_s",
        "0.01 s is shorter than the cycle period 0.02 s (site.cycle_period_s)",
    ),
    (
        "grid meter read less than every cycle",
        set_("devices.grid_meter.poll_period_s", 0.5),
        "devices.grid_meter.poll_period_s",
        "the grid meter and the PCC breaker are read every cycle",
    ),
    (
        "PCC breaker read less than every cycle",
        set_("devices.pcc_breaker.poll_period_s", 0.1),
        "devices.pcc_breaker.poll_period_s",
        "grid-loss detection rests on them",
    ),
    (
        "poll period on an OCPP station",
        set_("devices.ocpp_1.poll_period_s", 1.0),
        "devices.ocpp_1.poll_period_s",
        "pushes its readings: it is not polled",
    ),
    (
        "zero timeout",
        set_("devices.grid_meter.timeout_s", 0),
        "devices.grid_meter.timeout_s",
        "Input should be greater than 0",
    ),
    (
        "zero cycle period",
        set_("site.cycle_period_s", 0),
        "site.cycle_period_s",
        "Input should be greater than 0",
    ),
    (
        "negative return to service",
        set_("grid.return_to_service_s", -1.0),
        "grid.return_to_service_s",
        "Input should be greater than or equal to 0",
    ),
    (
        "return to service beyond 600 s",
        set_("grid.return_to_service_s", 601.0),
        "grid.return_to_service_s",
        "Input should be less than or equal to 600",
    ),
    # grid windows
    (
        "voltage window above 1.0",
        set_("grid.voltage_window_pu", [1.01, 1.05]),
        "grid.voltage_window_pu",
        "[1.01, 1.05] must bracket 1.0 pu",
    ),
    (
        "voltage window ending at 1.0",
        set_("grid.voltage_window_pu", [0.917, 1.0]),
        "grid.voltage_window_pu",
        "must bracket 1.0 pu",
    ),
    (
        "voltage window reversed",
        set_("grid.voltage_window_pu", [1.05, 0.917]),
        "grid.voltage_window_pu",
        "must bracket 1.0 pu",
    ),
    (
        "voltage window of three values",
        set_("grid.voltage_window_pu", [0.9, 1.0, 1.1]),
        "grid.voltage_window_pu",
        "at most 2 items",
    ),
    (
        "frequency window beside nominal",
        set_("grid.frequency_window_hz", [50.5, 51.0]),
        "grid.frequency_window_hz",
        "[50.5, 51.0] must bracket nominal_frequency_hz 50.0 Hz",
    ),
    (
        "60 Hz site with a 50 Hz window",
        set_("grid.nominal_frequency_hz", 60.0),
        "grid.frequency_window_hz",
        "must bracket nominal_frequency_hz 60.0 Hz",
    ),
    (
        "grid frequency neither 50 nor 60",
        set_("grid.nominal_frequency_hz", 55.0),
        "grid.nominal_frequency_hz",
        "55.0 Hz is not a grid frequency (50 or 60)",
    ),
    # sync limits
    (
        "sync frequency limit too wide",
        set_("sync.max_frequency_diff_hz", 2.0),
        "sync.max_frequency_diff_hz",
        "Input should be less than or equal to 1",
    ),
    (
        "sync phase limit zero",
        set_("sync.max_phase_diff_deg", 0),
        "sync.max_phase_diff_deg",
        "Input should be greater than 0",
    ),
    # unknown keys (typos)
    (
        "typo in grid",
        rename("grid.return_to_service_s", "return_to_service"),
        "grid.return_to_service",
        "unknown key",
    ),
    (
        "typo in a device",
        rename("devices.pv.rating_w", "rating"),
        "devices.pv.rating",
        "unknown key",
    ),
    (
        "typo in a load",
        rename(f"loads[{LIGHTING}].min_off_s", "min_of_s"),
        f"{LIGHTING_AT}.min_of_s",
        "unknown key",
    ),
    ("unknown section", set_("grids", {}), "grids", "unknown key"),
    # missing keys
    ("missing grid section", delete("grid"), "grid", "required key is missing"),
    (
        "device without port",
        delete("devices.pv.port"),
        "devices.pv.port",
        "required key is missing",
    ),
    # wrong types
    (
        "port is a word",
        set_("devices.pv.port", "fifteen"),
        "devices.pv.port",
        "Input should be a valid integer",
    ),
    (
        "cycle period is a word",
        set_("site.cycle_period_s", "fast"),
        "site.cycle_period_s",
        "Input should be a valid number",
    ),
    (
        "can_form is a word",
        set_("devices.charger_3.can_form", "perhaps"),
        "devices.charger_3.can_form",
        "Input should be a valid boolean",
    ),
    (
        "load name is a number",
        set_(f"loads[{LIGHTING}].name", 5),
        f"{LIGHTING_AT}.name",
        "Input should be a valid string",
    ),
    (
        "loads is a table",
        set_("loads", {"emergency_lighting": {}}),
        "loads",
        "Input should be a valid list",
    ),
    (
        "device is a number",
        set_("devices.pv", 5),
        "devices.pv",
        "Input should be a valid dictionary",
    ),
    (
        "unknown driver",
        set_("devices.pv.driver", "sunspec_inverterr"),
        "devices.pv.driver",
        "Input should be 'sunspec_meter', 'pcc_breaker'",
    ),
    (
        "port out of range",
        set_("devices.pv.port", 70_000),
        "devices.pv.port",
        "Input should be less than or equal to 65535",
    ),
    (
        "unit id out of range",
        set_("devices.pv.unit_id", 248),
        "devices.pv.unit_id",
        "Input should be less than or equal to 247",
    ),
    # grid-forming
    (
        "no grid-former",
        all_of(
            set_("devices.charger_1.can_form", False),
            set_("devices.charger_2.can_form", False),
            set_("devices.charger_1.pcc_interlock", False),
            set_("devices.charger_2.pcc_interlock", False),
        ),
        "devices",
        "no bidirectional_charger can form the grid (can_form = true)",
    ),
    (
        "PCC interlock on a grid follower",
        set_("devices.charger_3.pcc_interlock", True),
        "devices.charger_3.pcc_interlock",
        "only a grid-forming bidirectional_charger (can_form = true) or an OCPP station"
        ' declared a former (role = "former") has a PCC interlock',
    ),
    (
        "outlet that forms the grid",
        set_("devices.v2l_1.can_form", True),
        "devices.v2l_1.can_form",
        "only a bidirectional_charger can form the grid",
    ),
    # vehicles
    (
        "vehicle with both charger and outlet",
        set_(f"vehicles[{FLEET_1}].outlet", "v2l_1"),
        f"{FLEET_1_AT}",
        "a vehicle names exactly one of charger or outlet",
    ),
    (
        "vehicle with neither charger nor outlet",
        delete(f"vehicles[{FLEET_1}].charger"),
        f"{FLEET_1_AT}",
        "a vehicle names exactly one of charger or outlet",
    ),
    (
        "reserve above 100 %",
        set_(f"vehicles[{FLEET_1}].reserve_soc_pct", 120.0),
        f"{FLEET_1_AT}.reserve_soc_pct",
        "Input should be less than or equal to 100",
    ),
    (
        "reserve is nan",
        set_(f"vehicles[{FLEET_1}].reserve_soc_pct", float("nan")),
        f"{FLEET_1_AT}.reserve_soc_pct",
        "Input should be a finite number",
    ),
    (
        "infinite battery",
        set_(f"vehicles[{FLEET_1}].capacity_wh", float("inf")),
        f"{FLEET_1_AT}.capacity_wh",
        "Input should be a finite number",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "key", "reason"),
    [pytest.param(m, k, r, id=name) for name, m, k, r in CASES],
)
def test_one_problem(mutation: Mutation, key: str, reason: str) -> None:
    problems = problems_after(mutation)
    assert [p.key for p in problems] == [key], problems
    assert reason in problems[0].reason
    assert problems[0].file == FILE
    assert str(problems[0]) == f"{FILE}: {key}: {problems[0].reason}"


def test_duplicate_load_id_names_both_loads() -> None:
    problems = problems_after(set_(f"loads[{RADIO}].id", "emergency_lighting"))
    assert {(p.key, p.reason) for p in problems} == {
        (f"{LIGHTING_AT}.id", "duplicate load id 'emergency_lighting'"),
        (f"loads[{RADIO}] (emergency_lighting).id", "duplicate load id 'emergency_lighting'"),
    }


def test_duplicate_vehicle_id_names_both_vehicles() -> None:
    problems = problems_after(set_(f"vehicles[{FLEET_2}].id", "fleet_1"))
    assert {(p.key, p.reason) for p in problems} == {
        (f"{FLEET_1_AT}.id", "duplicate vehicle id 'fleet_1'"),
        (f"vehicles[{FLEET_2}] (fleet_1).id", "duplicate vehicle id 'fleet_1'"),
    }


def test_vehicle_at_an_outlet_named_as_charger() -> None:
    donor_2 = vehicle_key("donor_v2l_2")
    problems = problems_after(set_(f"vehicles[{FLEET_1}].charger", "v2l_2"))
    assert [(p.key, p.reason) for p in problems] == [
        (
            f"{FLEET_1_AT}.charger",
            "device 'v2l_2' is a v2l_outlet, not a bidirectional_charger or ocpp",
        ),
        (f"{donor_2}.outlet", "'v2l_2' already holds vehicle 'fleet_1'"),
    ]


def test_typo_of_a_required_key_reports_both_halves() -> None:
    problems = problems_after(rename("grid.meter", "metre"))
    assert [(p.key, p.reason) for p in problems] == [
        ("grid.meter", "required key is missing"),
        ("grid.metre", "unknown key"),
    ]


def test_missing_tier_on_the_bus() -> None:
    comfort = [i for i, load in enumerate(REFERENCE["loads"]) if load["tier"] == "comfort"]
    problems = problems_after(*(set_(f"loads[{i}].tier", "essential") for i in comfort))
    assert [(p.key, p.reason) for p in problems] == [
        ("loads", "missing tier 'comfort': no load on the site bus has it")
    ]


def test_a_tier_only_on_a_v2l_circuit_is_missing_on_the_bus() -> None:
    bus_life_safety = [
        i
        for i, load in enumerate(REFERENCE["loads"])
        if load["tier"] == "life_safety" and load.get("supply", "bus") == "bus"
    ]
    problems = problems_after(*(set_(f"loads[{i}].tier", "critical") for i in bus_life_safety))
    assert [p.key for p in problems] == ["loads"]
    assert "missing tier 'life_safety'" in problems[0].reason


def test_a_short_cycle_names_every_cycle_devices_whose_timeout_spans_ten_cycles() -> None:
    # A read may stay in flight across cycles, but the grid meter and the PCC breaker are
    # read every cycle: a silence of more than ten cycles before a read fails is refused;
    # the others are judged against their own period (1 s by default).
    problems = problems_after(
        set_("site.cycle_period_s", 0.005),
        *(
            set_(f"devices.{name}.timeout_s", 0.2)
            for name, device in REFERENCE["devices"].items()
            # (no PV inverter can answer within 0.2 s: check-config would say so too)
            if device["driver"] not in ("ocpp", "sunspec_inverter")
        ),
    )
    assert sorted(p.key for p in problems) == [
        "devices.grid_meter.timeout_s",
        "devices.pcc_breaker.timeout_s",
    ]


def test_several_field_problems_are_all_reported() -> None:
    problems = problems_after(
        set_(f"loads[{LIGHTING}].tier", "vip"),
        set_("devices.pv.port", -1),
        rename("grid.meter", "metre"),
        set_("grid.return_to_service_s", 900.0),
    )
    assert sorted(p.key for p in problems) == [
        "devices.pv.port",
        "grid.meter",
        "grid.metre",
        "grid.return_to_service_s",
        f"{LIGHTING_AT}.tier",
    ]


def test_several_cross_check_problems_are_all_reported() -> None:
    problems = problems_after(
        set_("grid.meter", "nope"),
        set_("devices.charger_2.port", 15031),
        set_(f"loads[{RADIO}].channel", 0),
        set_(f"vehicles[{FLEET_1}].charger", "charger_9"),
        set_("devices.pv.timeout_s", 1.5),
    )
    assert sorted(p.key for p in problems) == [
        "devices.charger_2.port",
        "devices.pv.timeout_s",
        "grid.meter",
        f"{RADIO_AT}.channel",
        f"{FLEET_1_AT}.charger",
    ]
    assert all(p.file == FILE for p in problems)


# ---------------------------------------------------------------- names in key paths


def test_two_loads_with_one_name_are_both_named() -> None:
    problems = problems_after(set_(f"loads[{RADIO}].name", "Emergency lighting"))
    assert [(p.key, p.reason) for p in problems] == [
        (
            f"{LIGHTING_AT}.name",
            f"duplicate load name 'Emergency lighting' (also {RADIO_AT}): the tablet and the"
            " alarms name loads by it",
        ),
        (
            f"{RADIO_AT}.name",
            f"duplicate load name 'Emergency lighting' (also {LIGHTING_AT}): the tablet and the"
            " alarms name loads by it",
        ),
    ]


def test_load_names_that_differ_only_in_case_and_spaces_are_one_name() -> None:
    problems = problems_after(set_(f"loads[{RADIO}].name", "  emergency   LIGHTING "))
    assert [p.key for p in problems] == [f"{LIGHTING_AT}.name", f"{RADIO_AT}.name"]


def test_reference_load_names_are_unique(site: SiteConfig) -> None:
    names = [" ".join(load.name.split()).casefold() for load in site.loads]
    assert len(set(names)) == len(names)


def test_field_error_of_a_load_names_its_id() -> None:
    kitchen = load_index("kitchen")
    problems = problems_after(set_(f"loads[{kitchen}].tier", "vip"))
    assert [p.key for p in problems] == [f"loads[{kitchen}] (kitchen).tier"]


def test_field_error_of_a_vehicle_names_its_id() -> None:
    problems = problems_after(set_(f"vehicles[{FLEET_2}].capacity_wh", -1))
    assert [p.key for p in problems] == [f"vehicles[{FLEET_2}] (fleet_2).capacity_wh"]


@pytest.mark.parametrize("bad_id", [None, 5, ""])
def test_a_load_without_a_usable_id_is_named_by_index(bad_id: Any) -> None:
    path = f"loads[{RADIO}].id"
    mutation = delete(path) if bad_id is None else set_(path, bad_id)
    problems = problems_after(mutation)
    assert [p.key for p in problems] == [f"loads[{RADIO}].id"]


def test_cross_check_problem_of_a_load_names_its_id() -> None:
    problems = problems_after(set_(f"loads[{RADIO}].panel", "panel_x"))
    assert [str(p) for p in problems] == [
        f"{FILE}: loads[{RADIO}] (radio_comms).panel: unknown device 'panel_x'"
    ]


# ---------------------------------------------------------------- Modbus TCP gateways
# Several devices behind one host:port (an RS-485-to-TCP gateway) share one connection,
# one request at a time: charger_1 is at 127.0.0.1:15031, unit 1.


def behind_charger_1(*names: str, timeout_s: float | None = None) -> list[Mutation]:
    """Move devices to charger_1's endpoint, with unit ids 2, 3, ..."""
    mutations: list[Mutation] = []
    for unit, name in enumerate(names, start=2):
        mutations += [set_(f"devices.{name}.port", 15031), set_(f"devices.{name}.unit_id", unit)]
        if timeout_s is not None:
            mutations.append(set_(f"devices.{name}.timeout_s", timeout_s))
    return mutations


def test_gateway_too_busy_for_its_devices_schedule() -> None:
    # the formers and the panels are read every cycle in an island: behind one gateway
    # their typical replies (6 ms, 8 ms) take 28 ms of every 20 ms cycle
    problems = problems_after(*behind_charger_1("charger_2", "panel_main", "panel_v2l"))
    assert [p.key for p in problems] == ["devices.panel_main.port"]  # the first in the file
    reason = problems[0].reason
    assert "Modbus TCP endpoint 127.0.0.1:15031 answers one request at a time" in reason
    assert (
        "(panel_main, panel_v2l, charger_1, charger_2 every cycle (0.02 s) in an island)"
        in reason
    )
    assert "busy 140% of the time, more than 90%" in reason
    # a longer cycle leaves the gateway time
    parses_after(
        *behind_charger_1("charger_2", "panel_main", "panel_v2l"), set_("site.cycle_period_s", 0.05)
    )


def test_gateway_counts_devices_read_at_their_own_period_by_that_period() -> None:
    # followers, outlets and PV are read once a second: eight of them cost a gateway little
    site = parses_after(*behind_charger_1("charger_3", "charger_4", "v2l_1", "v2l_2", "pv"))
    assert site.devices["pv"].endpoint == site.devices["charger_1"].endpoint
    # but read every cycle, the five followers' replies no longer fit
    problems = problems_after(
        *behind_charger_1("charger_3", "charger_4", "v2l_1", "v2l_2"),
        *(set_(f"devices.{n}.poll_period_s", 0.02) for n in ("charger_3", "charger_4")),
        *(set_(f"devices.{n}.poll_period_s", 0.1) for n in ("v2l_1", "v2l_2")),
    )
    assert [p.key for p in problems] == ["devices.charger_1.port"]
    assert "charger_3 every 0.02 s" not in problems[0].reason  # read every cycle: said so
    assert "v2l_1 every 0.1 s, v2l_2 every 0.1 s" in problems[0].reason


def test_gateway_with_a_duplicate_unit_id() -> None:
    problems = problems_after(
        *behind_charger_1("charger_2", "charger_3"),
        set_("devices.charger_3.unit_id", 2),
        set_("site.cycle_period_s", 0.05),
    )
    assert [(p.key, p.reason) for p in problems] == [
        (
            "devices.charger_3.port",
            "duplicate endpoint 127.0.0.1:15031 unit id 2 (also used by devices.charger_2)",
        )
    ]


def test_devices_on_their_own_ports_are_not_a_gateway() -> None:
    # every device of the reference site has its own port: 11 x 0.01 s is no problem
    parses_after(set_("site.cycle_period_s", 0.011))


# ---------------------------------------------------------------- accepted variants


def test_same_port_with_another_unit_id_is_fine() -> None:
    site = parses_after(set_("devices.charger_2.port", 15031), set_("devices.charger_2.unit_id", 2))
    assert site.devices["charger_2"].port == site.devices["charger_1"].port


def test_return_to_service_bounds_are_inclusive() -> None:
    assert parses_after(set_("grid.return_to_service_s", 0)).grid.return_to_service_s == 0
    assert parses_after(set_("grid.return_to_service_s", 600)).grid.return_to_service_s == 600


def test_tier_label_ignores_case() -> None:
    site = parses_after(set_(f"loads[{LIGHTING}].tier", "Life_Safety"))
    assert site.loads[LIGHTING].tier is Tier.LIFE_SAFETY


def test_sections_with_defaults_may_be_left_out() -> None:
    site = parses_after(delete("sync"), delete("dispatch"))
    assert site.sync.max_phase_diff_deg == 20.0
    assert site.dispatch.shed_margin_w == 500.0


def test_60_hz_site_gets_the_ieee_1547_enter_service_window() -> None:
    site = parses_after(
        set_("grid.nominal_frequency_hz", 60.0),
        delete("grid.frequency_window_hz"),
        delete("grid.trip_table"),
    )
    assert site.grid.frequency_window_hz == (59.5, 60.1)
    assert site.grid.trip_table == "ieee1547_cat2"


def test_50_hz_default_window() -> None:
    site = parses_after(delete("grid.frequency_window_hz"))
    assert site.grid.frequency_window_hz == (49.5, 50.5)


# ---------------------------------------------------------------- reading files


def only_problem(path: Path) -> ConfigProblem:
    with pytest.raises(ConfigError) as caught:
        load_site(path)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert str(only_problem(path)) == f"{path}: (file): No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert only_problem(tmp_path).key == "(file)"


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[site]\nname = 'x'\ncycle_period_s 0.02\n", encoding="utf-8")
    problem = only_problem(path)
    assert (problem.file, problem.key) == (str(path), "(syntax)")
    assert "line 3" in problem.reason


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[site]\nname = 'Kad\xfdk\xf6y'\n")  # ISO-8859-9, not UTF-8
    problem = only_problem(path)
    assert problem.key == "(file)"
    assert "not UTF-8" in problem.reason


def test_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SITE_FILE.read_bytes())
    assert load_site(path) == load_site(SITE_FILE)


def test_load_site_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE_FILE.read_text(encoding="utf-8").replace("port = 15050", "port = 70000"))
    problem = only_problem(path)
    assert str(problem) == f"{path}: devices.pv.port: Input should be less than or equal to 65535"


def test_a_resync_timeout_shorter_than_a_slow_cycles_sweep_is_refused() -> None:
    """At a 1 s cycle the island may slip only 0.011 Hz (policies.sync.slip_hz): one sweep
    of the angle takes 92 s, so a 60 s resynchronisation could give up before alignment."""
    import tomllib

    data = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    data["site"]["cycle_period_s"] = 1.0
    with pytest.raises(ConfigError) as err:
        parse_site(data, "site.toml")
    assert "site.toml: sync.timeout_s: 60 s is shorter than one sweep of the angle (92 s" in str(
        err.value
    )
    data["sync"]["timeout_s"] = 120.0
    assert parse_site(data, "site.toml").site.cycle_period_s == 1.0
