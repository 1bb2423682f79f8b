"""Issue 11: drills that show the endurance policy, judged on the plant's record.

Each failed on the controller before the policy: the old one kept every load on until
the cars reached their reserves together, and life-safety then went dark.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from firmware_sim import drill

REPO = Path(__file__).resolve().parents[2]
DRILLS = REPO / "config" / "drills"


def run(scenario: Path, out: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = drill.main([str(scenario), "--out", str(out), "--quiet"])
    return code, json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_long_outage_carries_life_safety_to_the_end(tmp_path: Path) -> None:
    code, report = run(DRILLS / "long_outage_energy.toml", tmp_path)
    assert code == 0, [c for c in report["criteria"] if not c["passed"]]
    assert report["safety_violations"] == []  # no wrong shed order, nothing below reserve
    assert report["unserved_kwh_bus"]["life_safety"] <= 0.01
    # the energy sheds, in order, one tier at a time, each once (no chatter)
    store = sqlite3.connect(tmp_path / "drill.sqlite")
    try:
        notes = [
            reason
            for (reason,) in store.execute(
                "SELECT reason FROM events WHERE kind = 'dispatch' ORDER BY id"
            )
            if "for energy" in reason
        ]
    finally:
        store.close()
    assert [n.split(" for energy")[0] for n in notes] == [
        "bus: shed comfort",
        "bus: shed essential",
        "bus: shed critical",
    ]
    assert all("life_safety would last" in n and "target 72 h" in n for n in notes)
    assert report["unserved_kwh_bus"]["critical"] > 0


def test_tiny_site_sheds_kettle_and_heater_so_life_safety_lasts(tmp_path: Path) -> None:
    code, report = run(DRILLS / "tiny_site_energy.toml", tmp_path)
    assert code == 0, [c for c in report["criteria"] if not c["passed"]]
    assert report["safety_violations"] == []
    assert report["unserved_kwh_bus"]["life_safety"] <= 0.01
    # the kitchen and the storage heaters ran only on the grid, for its first 20 s
    assert report["served_kwh"]["essential"] < 0.05
    assert report["served_kwh"]["comfort"] < 0.05
    (short,) = [a for a in report["alarms"] if a["code"] == "endurance_short:bus"]
    assert "target 72 h" in short["message"]
    # the controller's projection rides in the series beside the plant's figure: in the
    # island the bus is planned down to life-safety, which its car carries a finite time
    islanded = [row for row in report["series"] if row["mode"] == "islanded"]
    assert islanded
    bus = islanded[-1]["projection"]["bus"]
    assert bus["applied_tier"] == "life_safety"
    assert 0 < bus["projection_h"]["life_safety"] < 72
    assert report["endurance_projection"]["bus"]["energy_wh"] >= 0


CLINIC = """
[scenario]
name = "Field clinic on a donor car"
site = "{site}"
start = "2026-01-20T18:00:00+03:00"
duration = "10h"

[initial]
soc_pct = {{ fleet_1 = 90.0, fleet_2 = 90.0, donor_v2l_1 = 45.0 }}
absent = ["fleet_3", "fleet_4", "donor_v2l_2"]
load_factor = 1.0

[[events]]
at = "20s"
kind = "grid_loss"

[criteria]
max_unserved_kwh = {{ life_safety = 0.01 }}
unserved_scope = "site"
max_safety_violations = 0
"""


def test_v2l_circuit_keeps_its_car_for_the_clinic_fridge(tmp_path: Path) -> None:
    """A donor with 7.7 kWh above its reserve: the 2 kW urn and the tent lights would
    take it in under 3 h and the clinic fridge would go dark; the fridge alone (300 W)
    lasts the night. (v2l_2 has no car and no life-safety load.)"""
    scenario = tmp_path / "clinic.toml"
    scenario.write_text(CLINIC.format(site=(REPO / "config" / "site.toml").as_posix()))
    code, report = run(scenario, tmp_path / "out")
    assert code == 0, [c for c in report["criteria"] if not c["passed"]]
    assert report["safety_violations"] == []
    assert report["unserved_kwh"]["life_safety"] <= 0.01
    donor = next(v for v in report["vehicles"] if v["id"] == "donor_v2l_1")
    assert donor["end_soc_pct"] > donor["reserve_soc_pct"]
    alarms = [a["code"] for a in report["alarms"]]
    assert "endurance_short:v2l_1" in alarms


@pytest.mark.timeout(400)  # 72 h with the reference site's two OCPP stations: about 80 s
def test_the_72h_earthquake_serves_the_clinic_fridge_while_its_donor_is_there(
    tmp_path: Path,
) -> None:
    """Issue 11: in the 72 h earthquake drill the field clinic fridge (life-safety, on the
    V2L circuit of a resident's car) went dark for the last 22 h while the tent's other
    loads ran. Now her car keeps it, ahead of the tent's light and tea urn, from her
    arrival to the leaving time she registered (48 h; then the car is hers again), judged
    on the plant's record. The whole 72 h, on the virtual clock (about 12 s)."""
    text = (DRILLS / "earthquake_72h.toml").read_text(encoding="utf-8")
    old = 'site = "../site.toml"'
    assert old in text
    text = text.replace(old, f'site = "{REPO / "config" / "site.toml"}"')
    text += (
        "\n[[criteria.endurance]]\n"
        'tier = "life_safety"\n'
        'circuit = "v2l_1"\n'
        'between = ["1h35m", "47h45m"]\n'
        'at_least = "46h"\n'
    )
    scenario = tmp_path / "earthquake_72h.toml"
    scenario.write_text(text, encoding="utf-8")
    code, report = run(scenario, tmp_path)
    assert code == 0, [c for c in report["criteria"] if not c["passed"]]
    (fridge,) = [c for c in report["criteria"] if "v2l_1" in c["name"]]
    assert fridge["measured"] >= 46.0
    assert report["safety_violations"] == []
