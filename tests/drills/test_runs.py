"""Every built-in scenario runs at --speed max and passes; a failing one exits 1; the
reports have every key and the HTML page is self-contained. (Speed is measured in bench/.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from firmware_sim import drill

REPO = Path(__file__).resolve().parents[2]
DRILLS = REPO / "config" / "drills"
DATA = Path(__file__).resolve().parent / "data"

REPORT_KEYS = {
    "scenario",
    "island_collapses",
    "passed",
    "criteria",
    "sim_seconds",
    "wall_seconds",
    "transitions",
    "served_kwh",
    "unserved_kwh",
    "vehicles",
    "safety_violations",
    "alarms",
    "control_steps",
}
VEHICLE_KEYS = {
    "id",
    "start_soc_pct",
    "min_soc_pct",
    "end_soc_pct",
    "reserve_soc_pct",
    "energy_given_kwh",
}


@pytest.fixture(autouse=True)
def _keep_logging() -> object:
    level = logging.getLogger("resilience").level
    yield
    logging.getLogger("resilience").setLevel(level)


def run(scenario: Path, out: Path, *extra: str) -> tuple[int, dict[str, object]]:
    code = drill.main([str(scenario), "--out", str(out), "--quiet", *extra])
    return code, json.loads((out / "report.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("grid_flicker", ()),
        ("shortfall_emergency", ()),
        ("breaker_fails_to_open", ()),
        ("former_lost", ()),
        ("storm_cap_alert", ()),
        # the 72 h run lives in bench/drill_speed.py; here its first 6 hours
        ("earthquake_72h", ("--duration", "6h")),
    ],
)
def test_built_in_scenario_passes(tmp_path: Path, name: str, extra: tuple[str, ...]) -> None:
    code, report = run(DRILLS / f"{name}.toml", tmp_path, *extra)
    failed = [c for c in report["criteria"] if not c["passed"]]  # type: ignore[union-attr]
    if name == "earthquake_72h":
        # cut short, it ends islanded: every criterion but the final mode must hold
        failed = [c for c in failed if c["name"] != "final mode"]
    else:
        assert code == 0, failed
    assert not failed, failed
    assert report["safety_violations"] == []


def test_failing_scenario_exits_1(tmp_path: Path) -> None:
    code, report = run(DATA / "impossible.toml", tmp_path)
    assert code == 1
    assert report["passed"] is False
    verdicts = {c["name"]: c["passed"] for c in report["criteria"]}  # type: ignore[union-attr]
    assert verdicts["island formed after the grid went [ms]"] is False
    assert verdicts["entered emergency"] is False
    assert verdicts["safety violations"] is True


def test_report_has_every_key_and_a_self_contained_page(tmp_path: Path) -> None:
    code, report = run(DRILLS / "former_lost.toml", tmp_path)
    assert code == 0
    assert set(report) >= REPORT_KEYS
    for tier in ("life_safety", "critical", "essential", "comfort"):
        assert tier in report["served_kwh"]  # type: ignore[operator]
        assert tier in report["unserved_kwh"]  # type: ignore[operator]
    for criterion in report["criteria"]:  # type: ignore[union-attr]
        assert {"name", "limit", "measured", "passed"} <= set(criterion)
    for vehicle in report["vehicles"]:  # type: ignore[union-attr]
        assert set(vehicle) >= VEHICLE_KEYS
    for transition in report["transitions"]:  # type: ignore[union-attr]
        assert {"time_s", "from", "to", "trigger"} <= set(transition)
    assert any(t["to"] == "black_start" for t in report["transitions"])  # type: ignore[union-attr]
    assert any(a["code"] == "former_lost" for a in report["alarms"])  # type: ignore[union-attr]
    assert report["control_steps"] > 0
    # charger_1's fault drops the island: a collapse the world caused, counted, not a violation
    assert report["plant"]["collapses"] == 1  # type: ignore[index]
    assert report["plant"]["collapses_by_world"] == 1  # type: ignore[index]
    assert report["plant"]["collapses_by_controller"] == 0  # type: ignore[index]
    (collapse,) = report["island_collapses"]  # type: ignore[misc]
    assert (collapse["by"], collapse["cause"]) == ("world", "fault")
    assert collapse["loads"] and collapse["ended_s"] > collapse["time_s"]
    assert report["safety_violations"] == []
    verdicts = {c["name"]: c for c in report["criteria"]}  # type: ignore[union-attr]
    assert "caused by the world (not violations): 1" in verdicts["safety violations"]["detail"]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Island collapses" in page and "charger_1 hardware fault" in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert page.count("<svg") >= 4  # mode timeline, tiers, supply, state of charge
    assert "Pass criteria" in page and "PASSED" in page
    # the controller's own store, with simulated timestamps
    assert (tmp_path / "drill.sqlite").exists()
