"""Issue 11, section 3, judged on the plant's record: a connected site rides through grid
excursions inside its must-trip table, islands when a point's clearing time runs out, and
after a trip reconnects only once the grid is back inside the enter-service window for the
return-to-service delay. Scenario events grid_frequency and grid_voltage (steps, ramps)
drive the plant's grid; the drill's virtual clock makes OF1's 300 s cheap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware_sim import drill
from resilience.drills.scenario import ScenarioError, load_scenario
from resilience.modes import WAITING_ALARM

REPO = Path(__file__).resolve().parents[2]
US_SITE = REPO / "config" / "sites" / "us_site.toml"  # 60 Hz, IEEE 1547 Cat II, 59.5-60.1 Hz


def scenario(tmp_path: Path, duration: str, events: str) -> Path:
    path = tmp_path / "trip.toml"
    path.write_text(
        f"""
[scenario]
name = "must-trip"
site = "{US_SITE.as_posix()}"
duration = "{duration}"

[initial]
load_factor = 0.5

{events}

[criteria]
max_unserved_kwh = {{ life_safety = 1.0 }}
""",
        encoding="utf-8",
    )
    return path


def run(path: Path, out: Path) -> drill.Drill:
    async def go() -> drill.Drill:
        drill.install_eager_tasks(asyncio.get_running_loop())
        built = drill.build(load_scenario(path), out)
        try:
            bar = drill.Progress(built.duration_s, "trip", enabled=False)
            await drill.run_virtual(built, speed=None, progress=bar)
        finally:
            await asyncio.to_thread(built.store.close)
        return built

    return asyncio.run(go())


def breaker_commands(built: drill.Drill, which: str) -> list[float]:
    """Plant times [s] at which the PCC breaker was told to open or close (the plant's log)."""
    return [e.time_s for e in built.plant.log if e.kind == "breaker" and e.detail == which]


CYCLE_S = 0.02  # us_site.toml's cycle_period_s


def test_ride_through_of1_trip_and_reconnect_only_inside_the_window(tmp_path: Path) -> None:
    built = run(
        scenario(
            tmp_path,
            "40m",
            """
[[events]]
at = "10s"
kind = "grid_frequency"
hz = 60.2
note = "outside the enter-service window, inside the trip table: ride through"

[[events]]
at = "10m"
kind = "grid_frequency"
hz = 61.5
note = "beyond OF1 (61.2 Hz): trips after its 300 s clearing time"

[[events]]
at = "16m"
kind = "grid_frequency"
hz = 60.3
ramp = "30s"
note = "back, still above 60.1 Hz: wait"

[[events]]
at = "30m"
kind = "grid_frequency"
hz = 60.0
note = "inside the window: reconnect after the delay"
""",
        ),
        tmp_path / "out",
    )
    plant = built.plant
    assert plant.violations == []
    opens = breaker_commands(built, "open command, travelling")
    closes = breaker_commands(built, "close command, travelling")
    # 60.2 Hz for ten minutes and 61.5 Hz up to OF1's clearing time: connected throughout
    assert opens, "never islanded"
    assert 900.0 - 1e-6 <= opens[0] <= 900.0 + CYCLE_S + 1e-6
    # no close while the grid is at 60.3 Hz, even long after the return-to-service delay
    assert closes and closes[0] >= 1800.0 + 300.0 - 1e-6
    assert closes[0] <= 1800.0 + 300.0 + 30.0
    assert plant.breaker.contacts_closed
    waits = [a for a in built.recorder.alarm_log if a["code"] == WAITING_ALARM]
    assert len(waits) == 1, waits
    assert waits[0]["raised_s"] < 16 * 60 + 30
    assert "above the enter-service limit 60.1 Hz" in waits[0]["message"]
    assert waits[0]["cleared_s"] == pytest.approx(1800.0, abs=CYCLE_S)


def test_of2_trips_within_its_clearing_time_and_a_voltage_ramp_trips_on_uv1(
    tmp_path: Path,
) -> None:
    built = run(
        scenario(
            tmp_path,
            "1m",
            """
[[events]]
at = "10s"
kind = "grid_frequency"
hz = 62.5
""",
        ),
        tmp_path / "of2",
    )
    opens = breaker_commands(built, "open command, travelling")
    assert opens and 10.16 - 1e-6 <= opens[0] <= 10.16 + CYCLE_S + 1e-6
    assert built.plant.violations == []

    ramped = run(
        scenario(
            tmp_path,
            "3m",
            """
[[events]]
at = "10s"
kind = "grid_voltage"
pu = 0.9
note = "below the window's 0.95 pu, above UV1 (0.70 pu): ride through"

[[events]]
at = "70s"
kind = "grid_voltage"
pu = 0.6
ramp = "5s"
note = "through UV1 at 73.3 s: trips 10 s later"
""",
        ),
        tmp_path / "uv1",
    )
    # 0.9 -> 0.6 pu in 300 steps of 0.001 pu over 5 s: first below 0.70 pu at step 201
    crossing = 70.0 + 5.0 * 201 / 300
    opens = breaker_commands(ramped, "open command, travelling")
    assert opens and crossing + 10.0 - 1e-6 <= opens[0] <= crossing + 10.0 + CYCLE_S + 1e-6
    assert ramped.plant.violations == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            'kind = "grid_frequency"\nhz = 50.2',
            "events[0] (grid_frequency at 10s).hz: 50.2 Hz is more than 6 Hz from the site's"
            " nominal 60 Hz",
        ),
        (
            'kind = "grid_frequency"\nhz = 60.5\nramp = "2m"',
            "events[0] (grid_frequency at 10s).ramp: the ramp ends at 2.167 min, after the end of"
            " the drill (60 s)",
        ),
        (
            'kind = "grid_voltage"\npu = 0',
            "events[0] (grid_voltage at 10s).pu: Input should be greater than 0",
        ),
        (
            'kind = "grid_voltage"\npu = 0.9\nramp = "soon"',
            "events[0] (grid_voltage at 10s).ramp: 'soon' is not a duration",
        ),
        (
            'kind = "grid_frequency"\nfrequency_hz = 60.5',
            "events[0] (grid_frequency at 10s).hz: required key is missing",
        ),
    ],
)
def test_grid_events_are_validated(tmp_path: Path, event: str, message: str) -> None:
    path = scenario(tmp_path, "1m", f'[[events]]\nat = "10s"\n{event}\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert any(message in str(p) for p in err.value.problems), err.value.problems
