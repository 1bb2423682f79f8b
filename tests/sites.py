"""Site files for tests: hypothesis strategies that draw what a user could write.

The controller kept its safety rules on the reference site and broke them on sites
users wrote (issue 9). These strategies draw many other sites, each as a user would
write it in a file:

- `site_documents()`: the parsed TOML document (nested dicts and lists, what
  `tomllib` returns for a file);
- `ocpp_site_documents()`: a smaller such document with 1 to 3 OCPP stations
  (2.1, 2.0.1, 1.6; follower or load; their own cars) and an `[ocpp]` section;
- `sites()`: the `SiteConfig` that `parse_site` (fields, then `cross_check`) makes of
  one, so a generated site is exactly what `resilience check-config` accepts;
- `to_toml(document)` / `write_site(document, path)`: the document as TOML text, for
  CLI tests (no TOML writer is installed: tomllib only reads, so a small one is here).

What is drawn (every shape at least sometimes; each shrinks towards the simplest):
50 or 60 Hz; 230/400 V or 120/208 V, with a voltage window from that voltage's
standard (EN 50160, ANSI C84.1) and a frequency window around the nominal; 1 to 16
bidirectional chargers of 7.4-22 kW, 1 to 3 of them grid-forming, each former with or
without a PCC interlock; 0 to 3 V2L outlets of 1.8-3.6 kW, each feeding its own
circuit of 1 to 3 loads switched on a relay panel of the V2L circuits; 0 to 2 PV
inverters; 4 to 60 loads over all four tiers on as many relay boards as they need
(8, 12 or 16 channels: the load_panel driver's limit is 16); fleet vehicles at the
chargers and donors at the outlets, with capacity, reserve and sometimes their own
discharge limit and hours; devices on their own Modbus TCP endpoints, behind shared
Modbus TCP gateways (several unit ids on one host:port) or on Modbus RTU lines
(RS-485), and a V2L meter on a serial line of its own (driver v2l_serial); a control
cycle of 20-200 ms, the shortest that fits the serial lines and the gateways.

Plausible, not arbitrary: life-safety plus critical loads on the bus fit the weakest
grid-former (80 % of it, at the site's cold-load factor, less the shed margin), and on
each V2L circuit 80 % of its outlet; everything else may exceed what an island can
carry (that is what shedding is for).

Two check-config rules are being added by another change of issue 9; generated sites
already keep them (`pending_problems` states them, and the tests check it): load
display names are unique, and on every Modbus TCP host:port shared by several devices
the unit ids are distinct and the devices' timeouts add up to at most the cycle period.

`inprocess=True` (the default) also avoids one shape that firmware_sim's in-process
transport cannot serve yet: it keys every serial device by ``127.0.0.1:0``, so two
devices with the same unit id on different serial lines (or a line-protocol meter,
unit id 1 by default, beside an RTU device with unit id 1) would answer for each
other. Such sites are valid; `inprocess=False` draws them too (for check-config tests).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from resilience.config import DEFAULT_POLL_S, ConfigError, Device, SiteConfig, parse_site
from resilience.model import Tier

__all__ = [
    "CHARGER_RATINGS_W",
    "OCPP_VERSIONS",
    "V2L_RATINGS_W",
    "ocpp_site_documents",
    "pending_problems",
    "site_documents",
    "sites",
    "to_toml",
    "write_site",
]

CHARGER_RATINGS_W = (11000.0, 7400.0, 15000.0, 19200.0, 22000.0)
"""[W] bidirectional DC chargers: 7.4 kW (32 A single-phase) to 22 kW (32 A three-phase)."""
V2L_RATINGS_W = (3600.0, 1800.0, 2300.0, 3000.0)
"""[W] vehicle-to-load sockets: 1.8 kW (120 V, 15 A) to 3.6 kW (230 V, 16 A)."""
PV_RATINGS_W = (20000.0, 5000.0, 10000.0, 30000.0)
CAPACITIES_WH = (77400.0, 40000.0, 58000.0, 64000.0, 98000.0, 131000.0)
"""[Wh] usable batteries: a Leaf's 40 kWh to an F-150 Lightning's 131 kWh."""
OWN_DISCHARGE_LIMITS_W = (6000.0, 7000.0, 9600.0)
"""[W] some cars allow less V2G power than their charger's rating."""
PANEL_CHANNELS = (16, 8, 12)
CYCLES_S = (0.02, 0.05, 0.1, 0.2)
BAUD_RATES = (115200, 57600, 38400, 19200)
MAX_PER_GATEWAY = 8
MAX_PER_RTU_LINE = 4

VOLTAGES = {
    # line-to-line [V]: the voltage windows [pu] its standards give
    400.0: ((0.917, 1.05), (0.9, 1.1)),  # EN 50160 is +-10 %; the reference site's own
    208.0: ((0.95, 1.05), (0.917, 1.058)),  # ANSI C84.1 range A, range B
}
FREQUENCY_HALF_WINDOWS_HZ = (0.5, 0.2, 1.0)

BUDGET_FRACTION = 0.8
"""Life-safety + critical loads fit this share of the weakest grid-former."""

LOAD_NAMES: dict[Tier, tuple[str, ...]] = {
    Tier.LIFE_SAFETY: (
        "Emergency lighting",
        "Radio and comms room",
        "Medical fridge",
        "Oxygen concentrators",
        "Fire alarm panel",
        "Sump pump",
        "Nurse call system",
        "Dialysis station",
        "Exit signs",
    ),
    Tier.CRITICAL: (
        "Water pressure pump",
        "Heating circulation pumps",
        "Phone-charging station",
        "Network and Wi-Fi",
        "Freezer",
        "Security cameras",
        "Well pump",
        "Pharmacy fridge",
    ),
    Tier.ESSENTIAL: (
        "Kitchen",
        "General lighting",
        "Laundry",
        "Office",
        "Classroom lighting",
        "Dishwasher",
        "Microwaves",
    ),
    Tier.COMFORT: (
        "HVAC",
        "Hot water",
        "Lift",
        "EV charging of non-donor cars",
        "Pool pump",
        "Space heaters",
        "Coffee machines",
        "Workshop",
    ),
}
BUS_RATINGS_W: dict[Tier, tuple[int, int]] = {
    Tier.LIFE_SAFETY: (50, 2000),
    Tier.CRITICAL: (100, 3000),
    Tier.ESSENTIAL: (200, 6000),
    Tier.COMFORT: (500, 12000),
}
V2L_LOAD_RATINGS_W: dict[Tier, tuple[int, int]] = {
    Tier.LIFE_SAFETY: (50, 500),
    Tier.CRITICAL: (100, 1000),
    Tier.ESSENTIAL: (200, 1500),
    Tier.COMFORT: (300, 2000),
}
TIER_DRAW = (Tier.ESSENTIAL, Tier.COMFORT, Tier.CRITICAL, Tier.LIFE_SAFETY)
"""Tiers of the loads beyond one of each (the first shrinks best)."""


@dataclass(frozen=True)
class Naming:
    """How a site names its devices (users copy the reference, or use their own words)."""

    meter: str
    breaker: str
    charger: str
    outlet: str
    panel: str
    v2l_panel: str
    pv: str


NAMINGS = (
    Naming("grid_meter", "pcc_breaker", "charger_{}", "v2l_{}", "panel_{}", "panel_v2l_{}",
           "pv_{}"),
    Naming("utility_meter", "main_breaker", "ev_bay_{}", "outlet-{}", "board-{}", "tent-board-{}",
           "inverter-{}"),
)  # fmt: skip


@dataclass
class _Device:
    """A device while the document is built: its table, and how it is reached."""

    name: str
    entry: dict[str, Any]
    link: str  # "tcp", "gateway", "rtu" or "serial"
    group: int = 0  # which gateway or RTU line


# --------------------------------------------------------------------------- strategies
def _watts(low: int, high: int) -> st.SearchStrategy[float]:
    """[W] in steps of 10 W."""
    return st.integers(low // 10, high // 10).map(lambda n: float(n * 10))


def _scale_to(ratings: list[float], budget_w: float) -> list[float]:
    """The ratings scaled down, in 10 W steps (20 W at least), to add up to <= budget_w."""
    total = sum(ratings)
    if total <= budget_w:
        return ratings
    factor = budget_w / total
    return [max(20.0, math.floor(r * factor / 10.0) * 10.0) for r in ratings]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@st.composite
def site_documents(
    draw: st.DrawFn,
    *,
    max_chargers: int = 16,
    max_outlets: int = 3,
    max_loads: int = 60,
    inprocess: bool = True,
) -> dict[str, Any]:
    """A site file as its parsed TOML document (see the module docstring)."""
    names = draw(st.sampled_from(NAMINGS))
    volts = draw(st.sampled_from(sorted(VOLTAGES, reverse=True)))
    hz = draw(st.sampled_from([50.0, 60.0]))
    half = draw(st.sampled_from(FREQUENCY_HALF_WINDOWS_HZ))
    grid: dict[str, Any] = {
        "nominal_voltage_v": volts,
        "nominal_frequency_hz": hz,
        "connection_kva": 0.0,  # sized below, from the loads
        "meter": names.meter,
        "pcc_breaker": names.breaker,
        "voltage_window_pu": list(draw(st.sampled_from(VOLTAGES[volts]))),
        "frequency_window_hz": [hz - half, hz + half],
        "return_to_service_s": draw(st.sampled_from([300.0, 60.0, 180.0, 600.0])),
    }
    dispatch: dict[str, Any] = {}
    if draw(st.booleans()):
        dispatch["shed_margin_w"] = draw(st.sampled_from([300.0, 1000.0]))
    if draw(st.booleans()):
        dispatch["cold_load_factor"] = draw(st.sampled_from([1.2, 1.5]))
    if draw(st.booleans()):
        dispatch["restore_delay_s"] = draw(st.sampled_from([2.0, 10.0]))
    sync: dict[str, Any] = {}
    if draw(st.booleans()):
        # a larger site: the tighter IEEE 1547 windows
        sync = {"max_frequency_diff_hz": 0.2, "max_phase_diff_deg": 15.0, "slip_frequency_hz": 0.1}

    # ---------------------------------------------------------------- sources
    n_chargers = draw(st.integers(1, max_chargers))
    n_formers = draw(st.integers(1, min(3, n_chargers)))
    order = draw(st.permutations(range(n_chargers)))
    forming = set(order[:n_formers])
    devices: list[_Device] = [
        _Device(names.meter, {"driver": "sunspec_meter"}, "tcp"),
        _Device(names.breaker, {"driver": "pcc_breaker"}, "tcp"),
    ]
    chargers: list[_Device] = []
    for i in range(n_chargers):
        entry: dict[str, Any] = {
            "driver": "bidirectional_charger",
            "rating_w": draw(st.sampled_from(CHARGER_RATINGS_W)),
        }
        if i in forming:
            entry["can_form"] = True
            if draw(st.booleans()):
                entry["pcc_interlock"] = True
        chargers.append(_Device(names.charger.format(i + 1), entry, "tcp"))
    outlets = [
        _Device(
            names.outlet.format(i + 1),
            {"driver": "v2l_outlet", "rating_w": draw(st.sampled_from(V2L_RATINGS_W))},
            "tcp",
        )
        for i in range(draw(st.integers(0, max_outlets)))
    ]
    inverters = [
        _Device(
            names.pv.format(i + 1),
            {"driver": "sunspec_inverter", "rating_w": draw(st.sampled_from(PV_RATINGS_W))},
            "tcp",
        )
        for i in range(draw(st.integers(0, 2)))
    ]

    # ---------------------------------------------------------------- vehicles
    vehicles: list[dict[str, Any]] = []
    first_former = min(forming)
    for i, charger in enumerate(chargers):
        if i != first_former and not draw(st.booleans()):
            continue  # an empty bay: a donor may come
        vehicle: dict[str, Any] = {
            "id": f"fleet_{i + 1}",
            "name": f"Fleet car {i + 1}",
            "charger": charger.name,
            "capacity_wh": draw(st.sampled_from(CAPACITIES_WH)),
            "reserve_soc_pct": float(draw(st.integers(4, 10)) * 5),
        }
        limit = draw(st.one_of(st.none(), st.sampled_from(OWN_DISCHARGE_LIMITS_W)))
        if limit is not None and limit < charger.entry["rating_w"]:
            vehicle["max_discharge_w"] = limit
        hours = draw(st.sampled_from([None, [[0.0, 8.0], [18.0, 24.0]], [[7.0, 19.0]]]))
        if hours is not None:
            vehicle["available_hours"] = hours
        vehicles.append(vehicle)
    for i, outlet in enumerate(outlets):
        if draw(st.booleans()):
            vehicles.append(
                {
                    "id": f"donor_{i + 1}",
                    "name": f"Donor car on {outlet.name}",
                    "outlet": outlet.name,
                    "capacity_wh": draw(st.sampled_from(CAPACITIES_WH)),
                    "reserve_soc_pct": float(draw(st.integers(6, 10)) * 5),
                }
            )

    # ---------------------------------------------------------------- loads
    at_charger = {v["charger"]: v for v in vehicles if "charger" in v}
    former_caps = [
        min(c.entry["rating_w"], at_charger.get(c.name, {}).get("max_discharge_w", math.inf))
        for c in chargers
        if c.entry.get("can_form")
    ]
    margin = dispatch.get("shed_margin_w", 500.0)
    cold = dispatch.get("cold_load_factor", 1.0)
    budget_w = min(former_caps) * BUDGET_FRACTION / cold - margin

    circuit_sizes = [draw(st.integers(1, 3)) for _ in outlets]
    n_bus = draw(st.integers(4, max(4, max_loads - sum(circuit_sizes))))
    bus_tiers = [*Tier, *(draw(st.sampled_from(TIER_DRAW)) for _ in range(n_bus - 4))]
    bus_tiers = [bus_tiers[i] for i in draw(st.permutations(range(n_bus)))]
    bus_ratings = [draw(_watts(*BUS_RATINGS_W[tier])) for tier in bus_tiers]
    firm = [i for i, tier in enumerate(bus_tiers) if tier <= Tier.CRITICAL]
    for i, watts in zip(firm, _scale_to([bus_ratings[i] for i in firm], budget_w), strict=True):
        bus_ratings[i] = watts

    used: Counter[str] = Counter()

    def load(tier: Tier, rating_w: float, circuit: str | None) -> dict[str, Any]:
        base = draw(st.sampled_from(LOAD_NAMES[tier]))
        if circuit is not None:
            base = f"{base} ({circuit})"
        used[base] += 1
        name = base if used[base] == 1 else f"{base} {used[base]}"
        entry: dict[str, Any] = {
            "id": _slug(name),
            "name": name,
            "tier": tier.label,
            "rated_power_w": rating_w,
        }
        min_on = draw(st.sampled_from([0.0, 30.0, 60.0]))
        min_off = draw(st.sampled_from([0.0, 10.0, 60.0, 180.0]))
        if min_on:
            entry["min_on_s"] = min_on
        if min_off:
            entry["min_off_s"] = min_off
        return entry

    bus_loads = [load(t, w, None) for t, w in zip(bus_tiers, bus_ratings, strict=True)]
    circuits: list[list[dict[str, Any]]] = []
    for k, (outlet, size) in enumerate(zip(outlets, circuit_sizes, strict=True)):
        tiers = [Tier.CRITICAL, *(draw(st.sampled_from(list(Tier))) for _ in range(size - 1))]
        ratings = [draw(_watts(*V2L_LOAD_RATINGS_W[t])) for t in tiers]
        firm = [i for i, t in enumerate(tiers) if t <= Tier.CRITICAL]
        limit = outlet.entry["rating_w"] * BUDGET_FRACTION
        for i, watts in zip(firm, _scale_to([ratings[i] for i in firm], limit), strict=True):
            ratings[i] = watts
        circuits.append(
            [load(t, w, f"V2L tent {k + 1}") for t, w in zip(tiers, ratings, strict=True)]
        )
        for entry in circuits[-1]:
            entry["supply"] = outlet.name

    # ---------------------------------------------------------------- relay boards
    channels = draw(st.sampled_from(PANEL_CHANNELS))
    n_boards = math.ceil(n_bus / channels) + draw(st.integers(0, 1))
    per_board = math.ceil(n_bus / n_boards)
    panels: list[_Device] = []
    for b in range(n_boards):
        panel = _Device(names.panel.format(b + 1), {"driver": "load_panel", "channels": channels},
                        "tcp")  # fmt: skip
        panels.append(panel)
        for ch, load_entry in enumerate(bus_loads[b * per_board : (b + 1) * per_board]):
            load_entry["panel"], load_entry["channel"] = panel.name, ch
    if circuits:
        shared = draw(st.booleans())
        groups = [[e for c in circuits for e in c]] if shared else circuits
        for g, on_panel in enumerate(groups):
            panel = _Device(names.v2l_panel.format(g + 1),
                            {"driver": "load_panel", "channels": 8 if len(on_panel) <= 8 else 16},
                            "tcp")  # fmt: skip
            panels.append(panel)
            for ch, load_entry in enumerate(on_panel):
                load_entry["panel"], load_entry["channel"] = panel.name, ch
    devices += [*panels, *chargers, *outlets, *inverters]

    # ---------------------------------------------------------------- how devices are reached
    # all on their own TCP endpoints; relay boards behind gateways; or anything anywhere
    style = draw(st.sampled_from(["tcp", "gateway", "mixed"]))
    serial_left = 1 if inprocess else 3
    for device in devices:
        if style == "gateway" and device.entry["driver"] == "load_panel":
            device.link = "gateway"
        elif style != "mixed":
            device.link = "tcp"
        elif device.entry["driver"] == "v2l_outlet" and serial_left and draw(st.booleans()):
            serial_left -= 1
            device.entry["driver"] = "v2l_serial"
            device.link = "serial"
        else:
            device.link = draw(st.sampled_from(["tcp", "tcp", "gateway", "rtu"]))
    n_gateways = draw(st.integers(1, 2))
    n_lines = draw(st.integers(1, 2))
    members: dict[tuple[str, int], list[_Device]] = {}
    for device in devices:
        if device.link in ("gateway", "rtu"):
            count = n_gateways if device.link == "gateway" else n_lines
            device.group = draw(st.integers(0, count - 1))
            sharing = members.setdefault((device.link, device.group), [])
            cap = MAX_PER_GATEWAY if device.link == "gateway" else MAX_PER_RTU_LINE
            if len(sharing) >= cap:
                device.link = "tcp"
            else:
                sharing.append(device)
    lan = draw(st.booleans())
    port = 15020
    serial_ports = 0
    rtu_unit = 2 if any(d.link == "serial" for d in devices) else 1
    for kind, g in sorted(members):
        sharing = members[(kind, g)]
        if kind == "gateway":
            first = draw(st.sampled_from([1, 10, 2]))
            host, gw_port = (f"192.168.1.{200 + g}", 502) if lan else ("127.0.0.1", 15100 + g)
            for unit, device in enumerate(sharing, start=first):
                device.entry.update(host=host, port=gw_port, unit_id=unit)
        else:
            serial_ports += 1
            baud = draw(st.sampled_from(BAUD_RATES))
            parity, stopbits = draw(st.sampled_from([("E", 1), ("N", 2), ("N", 1)]))
            for i, device in enumerate(sharing):
                unit = rtu_unit if inprocess else 1 + i
                rtu_unit += 1
                device.entry.update(
                    transport="rtu", serial_port=f"/dev/ttyUSB{serial_ports - 1}",
                    unit_id=unit, baudrate=baud, stopbits=stopbits,
                )  # fmt: skip
                if parity != "E":
                    device.entry["parity"] = parity
    for device in devices:
        if device.link == "tcp":
            if lan:
                device.entry.update(host=f"192.168.1.{10 + port - 15020}", port=502)
            else:
                device.entry["port"] = port
            port += 1
        elif device.link == "serial":
            baud = draw(st.sampled_from([19200, 9600, 115200]))
            device.entry.update(serial_port=f"/dev/ttyUSB{serial_ports}", baudrate=baud)
            serial_ports += 1

    # ---------------------------------------------------------------- timing
    base_s = draw(st.sampled_from(CYCLES_S))
    _set_timeouts(devices)

    # ---------------------------------------------------------------- the document
    bus_w = sum(e["rated_power_w"] for e in bus_loads)
    largest_w = max(e["rated_power_w"] for e in bus_loads)
    grid["connection_kva"] = float(max(25, math.ceil(bus_w * 0.7 / 5000) * 5,
                                       math.ceil(largest_w / 1000) + 5))  # fmt: skip
    doc: dict[str, Any] = {
        "site": {
            "name": draw(st.sampled_from(["Shelter", "Clinic", "School", "Sports hall"]))
            + f" ({n_chargers} chargers, {n_bus} loads)",
            "cycle_period_s": base_s,
            "store_path": "var/site.sqlite",
        },
        "grid": grid,
    }
    if sync:
        doc["sync"] = sync
    if dispatch:
        doc["dispatch"] = dispatch
    doc["devices"] = {d.name: d.entry for d in devices}
    doc["loads"] = [*bus_loads, *(e for c in circuits for e in c)]
    if vehicles:
        doc["vehicles"] = vehicles
    doc["site"]["cycle_period_s"] = _fit_cycle(doc, base_s, devices, members)
    return doc


def _set_timeouts(devices: list[_Device]) -> None:
    """Every device gets the least timeout its family can meet (check-config's default:
    frames included on a serial line), and a device whose timeout is longer than the
    default read period a poll period that long (check-config: a timeout may not outlast
    its device's period)."""
    for device in devices:
        device.entry.pop("timeout_s", None)
        device.entry.pop("poll_period_s", None)
        timeout_s = Device.model_validate(device.entry).timeout_s
        device.entry["timeout_s"] = timeout_s
        if timeout_s > DEFAULT_POLL_S:
            device.entry["poll_period_s"] = math.ceil(timeout_s * 10) / 10


TIMING_KEYS = ("timeout_s", "poll_period_s", "baudrate", "port", "cycle_period_s")


def _timing_problems(doc: dict[str, Any]) -> list[str] | None:
    """check-config's timing problems with the document (None: it has others too)."""
    try:
        parse_site(doc, "<generated site>")
    except ConfigError as exc:
        if all(p.key.rsplit(".", 1)[-1] in TIMING_KEYS for p in exc.problems):
            return [f"{p.key}: {p.reason}" for p in exc.problems]
        return None
    return []


def _fit_cycle(
    doc: dict[str, Any],
    base_s: float,
    devices: list[_Device],
    members: dict[tuple[str, int], list[_Device]],
) -> float:
    """The shortest cycle period in CYCLES_S from `base_s` on that check-config's timing
    rules accept (shared RS-485 lines and gateways that can carry their schedule). A line
    that fits no cycle is raised to 115200 baud (what an installer would do)."""
    for raise_baud in (False, True):
        if raise_baud:
            for (kind, _), line in members.items():
                if kind == "rtu":
                    for device in line:
                        device.entry["baudrate"] = 115200
            _set_timeouts(devices)
        for cycle_s in (c for c in CYCLES_S if c >= base_s):
            doc["site"]["cycle_period_s"] = cycle_s
            if not _timing_problems(doc):
                return cycle_s
    return CYCLES_S[-1]


def sites(**options: Any) -> st.SearchStrategy[SiteConfig]:
    """Valid `SiteConfig`s: `site_documents(**options)` through `parse_site`."""
    return site_documents(**options).map(lambda doc: parse_site(doc, "<generated site>"))


# --------------------------------------------------------------------------- endurance policy
def without_endurance_policy(config: SiteConfig) -> SiteConfig:
    """The site with the endurance policy off (every tier's target 0 h), for tests of the
    power balance alone: the policy would keep loads off for energy that they need on."""
    from resilience.config import EnduranceTargets

    dispatch = config.dispatch.model_copy(
        update={"endurance_target_h": 0.0, "endurance_targets_h": EnduranceTargets()}
    )
    return config.model_copy(update={"dispatch": dispatch})


# --------------------------------------------------------------------------- pending rules
def pending_problems(config: SiteConfig) -> list[str]:
    """The check-config rules of issue 9 that another change is adding to resilience.config,
    stated here so that generated sites keep them before they land: load display names are
    unique; on a Modbus TCP host:port shared by several devices the unit ids are distinct.
    (How much a shared endpoint can carry is check-config's own rule now, on each device's
    schedule: `resilience.config._check_tcp_endpoints`.)"""
    problems: list[str] = []
    names = Counter(load.name for load in config.loads)
    problems += [f"loads: display name {n!r} used {c} times" for n, c in names.items() if c > 1]
    endpoints: dict[tuple[str, int], list[str]] = {}
    for name, device in config.devices.items():
        if device.transport == "tcp":
            endpoints.setdefault((device.host, device.port), []).append(name)
    for (host, port), shared in endpoints.items():
        if len(shared) < 2:
            continue
        units = Counter(config.devices[n].unit_id for n in shared)
        problems += [
            f"{host}:{port}: unit id {u} used {c} times" for u, c in units.items() if c > 1
        ]
    return problems


# --------------------------------------------------------------------------- TOML
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r}: a site file holds no inf or nan")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"{value!r} ({type(value).__name__}) has no TOML form here")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    """Scalars and inline values first (TOML wants them before any sub-table), then
    sub-tables, then arrays of tables."""
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            # a table holding only sub-tables needs no header of its own
            if not value or not all(isinstance(v, dict) for v in value.values()):
                lines += ["", f"[{'.'.join(_key(p) for p in [*path, key])}]"]
            _table(lines, [*path, key], value)
    for key, value in table.items():
        if _is_table_array(value):
            for item in value:
                lines += ["", f"[[{'.'.join(_key(p) for p in [*path, key])}]]"]
                _table(lines, [*path, key], item)


def to_toml(document: Mapping[str, Any]) -> str:
    """A TOML text that `tomllib.loads` reads back as `document` (strings, booleans, ints,
    finite floats, lists, tables and arrays of tables; tuples are written as arrays)."""
    lines: list[str] = []
    _table(lines, [], document)
    return "\n".join(lines).lstrip("\n") + "\n"


def write_site(document: Mapping[str, Any], path: Path) -> Path:
    path.write_text(to_toml(document), encoding="utf-8")
    return path


def modbus_only(config: SiteConfig) -> SiteConfig:
    """The site without its OCPP stations (and the cars at them), for tests of the Modbus
    field's mechanics that run no central system: a station nobody simulates is a silent
    charger, which the controller must count as a possible load (rule 5)."""
    stations = set(config.ocpp_stations)
    if not stations:
        return config
    devices = {n: d for n, d in config.devices.items() if n not in stations}
    vehicles = [v for v in config.vehicles if v.charger not in stations]
    return config.model_copy(update={"devices": devices, "vehicles": vehicles})


OCPP_VERSIONS = ("2.1", "2.0.1", "1.6")


@st.composite
def ocpp_site_documents(
    draw: st.DrawFn,
    *,
    max_stations: int = 3,
    max_chargers: int = 4,
    max_loads: int = 16,
    call_timeout_s: float = 2.0,
) -> dict[str, Any]:
    """A site file (as `site_documents`, smaller by default) with 1 to `max_stations`
    OCPP stations: each of version 2.1, 2.0.1 or 1.6, role follower or load, a
    discharge_method for the older versions, 7.4-22 kW, often a fleet car of its own (its
    owner's reserve not always a round number); sometimes no reserve margin; and
    an `[ocpp]` section (`max_offline_duration_s` 1-5 s, `call_timeout_s` as given: a
    fuzzer on a virtual clock wants it short, since the central system times its calls in
    real time). No password hashes: in-process stations skip the WebSocket and its auth."""
    doc = draw(
        site_documents(max_chargers=max_chargers, max_outlets=1, max_loads=max_loads)
    )
    vehicles = doc.setdefault("vehicles", [])
    for i in range(draw(st.integers(1, max_stations))):
        name = f"ocpp_{i + 1}"
        version = draw(st.sampled_from(OCPP_VERSIONS))
        station: dict[str, Any] = {"identity": f"SIM-{i + 1:02d}", "version": version}
        if version != "2.1":
            station["discharge_method"] = draw(st.sampled_from(["none", "negative_limit"]))
        doc["devices"][name] = {
            "driver": "ocpp",
            "rating_w": draw(st.sampled_from(CHARGER_RATINGS_W)),
            "role": draw(st.sampled_from(["follower", "follower", "load"])),
            "ocpp": station,
        }
        if draw(st.integers(0, 3)) > 0:  # mostly a car: what the island can draw on
            vehicles.append(
                {
                    "id": f"station_car_{i + 1}",
                    "name": f"Car at {name}",
                    "charger": name,
                    "capacity_wh": draw(st.sampled_from(CAPACITIES_WH)),
                    # an owner's reserve need not be a round number
                    "reserve_soc_pct": float(draw(st.integers(4, 10)) * 5)
                    + draw(st.sampled_from([0.0, 0.3, -0.3])),
                }
            )
    if not vehicles:
        del doc["vehicles"]
    if draw(st.booleans()):
        doc.setdefault("dispatch", {})["reserve_margin_pct"] = 0.0  # no slack beyond it
    doc["ocpp"] = {
        "port": 0,
        "max_offline_duration_s": draw(st.sampled_from([2, 1, 5])),
        "call_timeout_s": call_timeout_s,
    }
    return doc
