"""Sites of any size for the benchmarks: the large test site scaled to N chargers.

    scaled_site(24)   # a site document: 24 chargers, 80 loads
    write_scaled_site(24, path)

`config/sites/large_site.toml` (a relief centre: 12 bidirectional chargers, 3 of them
grid-forming, 2 V2L outlets, 50 kW of PV, 40 loads on three 16-channel relay boards) is
the template, deterministic (no random draw: a benchmark compares runs):

- charger i is the template's charger ((i - 1) mod 12) + 1 (its rating, role and PCC
  interlock), with the fleet car parked there if the template parks one (fleet_i);
- loads: round(40 x N / 12), at least 4 (N = 12 gives the template's 40, N = 24 gives 80): up to 40,
  spread evenly over the template's list (so every tier and both V2L circuits appear);
  past 40, the template's loads again in order, as copies (`<id>_<k>`) on further
  16-channel boards, each on its own Modbus TCP endpoint;
- the life-safety and critical loads on the bus are scaled down together, if need be,
  to the template's 16.8 kW, so that they still fit one grid-former as a valid site
  requires (check-config's rule; tests/sites.py draws sites the same way);
- the meter, the PCC breaker, the three template boards (behind their gateway), the PV
  inverter and the two V2L outlets stay as they are: a site of any size has them.

`scaled_site(12)` is the large site itself (the same devices, loads and cars).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "config" / "sites" / "large_site.toml"
TEMPLATE_CHARGERS = 12
TEMPLATE_LOADS = 40
BOARD_CHANNELS = 16
PORT_BASE = 16000
"""Ports of the generated chargers and boards (a simulator given --free-ports moves them)."""


def loads_for(chargers: int) -> int:
    """Loads in proportion: the template's 40 for its 12 chargers (at least 4: a valid site
    has a load of each tier on its bus)."""
    return max(4, round(TEMPLATE_LOADS * chargers / TEMPLATE_CHARGERS))


def scaled_site(chargers: int) -> dict[str, Any]:
    """The large site scaled to `chargers` chargers and proportional loads (module doc)."""
    if chargers < 1:
        raise ValueError(f"a site needs at least one charger, not {chargers}")
    template: dict[str, Any] = tomllib.loads(TEMPLATE.read_text(encoding="utf-8"))
    doc = copy.deepcopy(template)
    if chargers == TEMPLATE_CHARGERS:
        return doc
    doc["site"]["name"] = f"{template['site']['name']}, scaled to {chargers} chargers"
    devices: dict[str, Any] = template["devices"]
    charger_names = [n for n, d in devices.items() if d["driver"] == "bidirectional_charger"]
    parked = {v["charger"]: v for v in template.get("vehicles", []) if "charger" in v}
    others = {n: d for n, d in devices.items() if n not in charger_names}
    new_devices: dict[str, Any] = dict(others)
    vehicles = [v for v in template.get("vehicles", []) if "charger" not in v]
    for i in range(1, chargers + 1):
        source = charger_names[(i - 1) % len(charger_names)]
        name = f"charger_{i}"
        new_devices[name] = {**devices[source], "port": PORT_BASE + i}
        car = parked.get(source)
        if car is not None:
            vehicles.append({**car, "id": f"fleet_{i}", "charger": name})
    loads = _loads(template["loads"], loads_for(chargers), new_devices)
    doc["devices"] = new_devices
    doc["loads"] = loads
    doc["vehicles"] = vehicles
    return doc


def _loads(
    template: list[dict[str, Any]], count: int, devices: dict[str, Any]
) -> list[dict[str, Any]]:
    if count <= len(template):
        picked = [copy.deepcopy(template[k * len(template) // count]) for k in range(count)]
    else:
        picked = [copy.deepcopy(load) for load in template]
        board = None
        used = BOARD_CHANNELS
        boards = 0
        for k in range(len(template), count):
            load = copy.deepcopy(template[k % len(template)])
            copy_no = k // len(template) + 1
            load["id"] = f"{load['id']}_{copy_no}"
            load["name"] = f"{load['name']} ({copy_no})"
            if used == BOARD_CHANNELS:
                boards += 1
                board = f"board_x{boards}"
                devices[board] = {
                    "driver": "load_panel",
                    "port": PORT_BASE + 500 + boards,
                    "channels": BOARD_CHANNELS,  # timeout_s: its family's least (check-config)
                }
                used = 0
            load["panel"] = board
            load["channel"] = used
            used += 1
            picked.append(load)
    budget_w = sum(
        ld["rated_power_w"]
        for ld in template
        if ld["tier"] in ("life_safety", "critical") and ld.get("supply", "bus") == "bus"
    )
    vital = [
        ld
        for ld in picked
        if ld["tier"] in ("life_safety", "critical") and ld.get("supply", "bus") == "bus"
    ]
    total_w = sum(ld["rated_power_w"] for ld in vital)
    if total_w > budget_w:
        for ld in vital:
            ld["rated_power_w"] = round(ld["rated_power_w"] * budget_w / total_w, 1)
    # a V2L circuit's vital loads must fit 80 % of its outlet: the copies share it
    for outlet, device in devices.items():
        if device["driver"] != "v2l_outlet":
            continue
        on_it = [
            ld
            for ld in picked
            if ld.get("supply") == outlet and ld["tier"] in ("life_safety", "critical")
        ]
        limit_w = 0.8 * device["rating_w"] - 100.0
        total_w = sum(ld["rated_power_w"] for ld in on_it)
        if total_w > limit_w:
            for ld in on_it:
                ld["rated_power_w"] = round(ld["rated_power_w"] * limit_w / total_w, 1)
    return picked


def write_scaled_site(chargers: int, path: Path) -> Path:
    """The scaled site as a TOML file at `path` (for `resilience run`, the simulator, drills)."""
    from islanding import to_toml  # the bench's small TOML writer (bench/ is on sys.path)

    path.write_text(to_toml(scaled_site(chargers)), encoding="utf-8")
    return path
