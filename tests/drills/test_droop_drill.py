"""A drill on the reference site with drooping grid-formers (and LocalFrequency stations
declared, their cars gone): the virtual clock makes it deterministic, whatever the
machine's load. A grid loss, an island carried by the former alone, its frequency on the
droop below nominal by more than the synchronism check allows, and the grid's return,
which the controller must still resynchronise to (the former's setpoint moved by its
droop; without that it never closes). Judged on the plant's record and the criteria.
"""

from __future__ import annotations

import re
from pathlib import Path

from firmware_sim import drill
from resilience.config import load_site
from tests.drills.test_grid_trip import run

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "config" / "site.toml"


def drooping_site(tmp_path: Path) -> Path:
    text = SITE.read_text(encoding="utf-8")
    text = text.replace("# droop_hz = 0.0 ", "droop_hz = 1.4   ")
    text = re.sub(
        r'(\[devices\.ocpp_[12]\.ocpp\]\nidentity = "[^"]+"\nversion = "2.1"\n)',
        r"\1local_frequency = true\n",
        text,
    )
    text = text.replace(
        "can_form = true                # second grid-former",
        "can_form = true\ndroop_hz = 1.4                 # second grid-former",
    )
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    config = load_site(path)
    assert {d.droop_hz for d in config.chargers.values() if d.can_form} == {1.4}
    assert all(d.ocpp and d.ocpp.local_frequency for d in config.ocpp_stations.values())
    return path


def test_a_drooping_island_with_local_frequency_stations_reconnects(tmp_path: Path) -> None:
    site = drooping_site(tmp_path)
    # Only the former keeps its car: it carries the island alone, below nominal on its
    # droop (the followers would take its load off it and leave it at no-load).
    unplugs = "".join(
        f'[[events]]\nat = "30s"\nkind = "unplug"\nconnector = "{c}"\n\n'
        for c in ("charger_2", "charger_3", "charger_4", "ocpp_1", "ocpp_2")
    )
    scenario = tmp_path / "droop.toml"
    scenario.write_text(
        f"""
[scenario]
name = "drooping island"
site = "{site.as_posix()}"
duration = "15m"

[initial]
load_factor = 1.0

{unplugs}
[[events]]
at = "1m"
kind = "grid_loss"

[[events]]
at = "4m"
kind = "grid_return"

[criteria]
max_unserved_kwh = {{ life_safety = 0.05 }}
unserved_scope = "bus"
max_safety_violations = 0
must_enter = ["islanded", "resynchronising"]
final_mode = "grid_connected"
""",
        encoding="utf-8",
    )
    built = run(scenario, tmp_path / "out")
    plant = built.plant
    assert plant.violations == []
    assert plant.pcc_closes, "reconnected"
    failed = [c for c in drill.evaluate(built) if not c["passed"]]
    assert failed == [], failed
    # the island ran on the droop: the former alone, below nominal by more than the
    # synchronism check's frequency window (so resynchronising needed the droop moved)
    island = [x for x in built.recorder.samples if 90 < x["t"] < 230]
    assert island and all(x["bus_hz"] < 50.0 - 0.3 for x in island), island[:3]
