"""On a steady grid a cycle keeps the last decision (resilience/steady.py), and nothing it
must act on waits for the next decision: a grid loss is decided in the cycle that reads it
(judged on the plant's record of the breaker command), an operator's command in the next.
"""

from __future__ import annotations

import dataclasses

import pytest

from firmware_sim.plant import PlantInit
from resilience.config import parse_site, trip_points
from resilience.model import BreakerCommand, GridReading, Mode
from resilience.modes import RAMP_DOWN_S, Memory
from resilience.policies.grid import TripState
from resilience.steady import STEADY_DECISION_MAX_S, may_keep_decision, timed_action_pending
from tests.inprocess_site import InProcessSite, reference_data

CONFIG = parse_site(reference_data(), "reference")
GRID = CONFIG.grid
POINTS = trip_points(GRID)
HEALTHY = GridReading(GRID.nominal_voltage_v, GRID.nominal_frequency_hz, 5000.0)


def keeps(**changes: object) -> bool:
    args: dict[str, object] = {
        "mode": Mode.GRID_CONNECTED,
        "memory": Memory(),
        "grid": GRID,
        "trip_points": POINTS,
        "meter": HEALTHY,
        "now_s": 100.05,
        "decided_s": 100.0,
        "field_unchanged": lambda: True,
        "busy": False,
    }
    args.update(changes)
    return may_keep_decision(**args)  # type: ignore[arg-type]


def test_a_steady_grid_keeps_the_decision() -> None:
    assert keeps()
    assert not keeps(max_s=0.0)  # [site] steady_decision_max_s = 0: every cycle decides


@pytest.mark.parametrize(
    "changes",
    [
        {"mode": Mode.ISLANDED},
        {"mode": Mode.STARTING},
        {"mode": Mode.PLANNED_ISLANDING},
        {"decided_s": None},
        {"now_s": 100.0 + 2 * STEADY_DECISION_MAX_S},
        {"now_s": 99.0},  # a clock that went back
        {"field_unchanged": lambda: False},
        {"busy": True},
        {"meter": None},
        {"meter": GridReading(0.0, 0.0, 0.0)},
        {"meter": GridReading(float("nan"), GRID.nominal_frequency_hz, 0.0)},
        {"meter": dataclasses.replace(HEALTHY, frequency_hz=GRID.frequency_window_hz[1] + 0.05)},
        {"meter": dataclasses.replace(HEALTHY, voltage_v=0.8 * GRID.nominal_voltage_v)},
        {"memory": Memory(trip_state=TripState((99.9,) + (None,) * (len(POINTS) - 1)))},
        {"memory": Memory(ramp_down_from_s=98.0)},
        {"memory": Memory(pcc_command=BreakerCommand.CLOSE, pcc_command_s=100.0)},
    ],
    ids=lambda changes: ",".join(changes),
)
def test_anything_that_may_change_the_decision_makes_it_again(changes: dict[str, object]) -> None:
    assert not keeps(**changes)


def test_timed_actions() -> None:
    memory = Memory(ramp_down_from_s=100.0)
    assert timed_action_pending(Mode.GRID_CONNECTED, memory, GRID, 100.0 + RAMP_DOWN_S / 2)
    assert not timed_action_pending(Mode.GRID_CONNECTED, memory, GRID, 100.0 + RAMP_DOWN_S)
    for mode in (Mode.RESYNCHRONISING, Mode.BLACK_START, Mode.ISLANDING, Mode.STARTING):
        assert timed_action_pending(mode, Memory(), GRID, 0.0)
    for mode in (Mode.GRID_CONNECTED, Mode.ISLANDED, Mode.EMERGENCY):
        assert not timed_action_pending(mode, Memory(), GRID, 0.0)


@pytest.fixture
def site() -> InProcessSite:
    site = InProcessSite(CONFIG, PlantInit(default_soc_pct=80.0))
    site.seconds(3.0)
    assert site.mode is Mode.GRID_CONNECTED
    yield site
    site.close()


def test_most_cycles_on_a_steady_grid_keep_the_decision(site: InProcessSite) -> None:
    stats = site.controller.stats
    kept, cycles = stats.kept, stats.cycles
    site.seconds(2.0)
    ran = stats.cycles - cycles
    per_decision = round(STEADY_DECISION_MAX_S / site.cycle_s)
    assert stats.kept - kept >= ran * (per_decision - 1) / per_decision - 2
    assert site.controller.status is not None
    assert site.now - site.controller.status.snapshot.time_s < STEADY_DECISION_MAX_S


def test_a_grid_loss_is_decided_in_the_cycle_that_reads_it(site: InProcessSite) -> None:
    """The loss comes right after a full decision, when the next cycles would keep it."""
    controller = site.controller
    for _ in range(20):
        if controller._decided_s == site.now:
            break
        site.cycles(1)
    assert controller._decided_s == site.now
    site.plant.grid_loss()
    log_len = len(site.plant.log)
    site.cycles(1)
    opened = [
        e for e in site.plant.log[log_len:] if e.kind == "breaker" and "open command" in e.detail
    ]
    assert opened, site.plant.log[log_len:]
    assert site.mode is Mode.ISLANDING
    site.islanded()
    assert site.plant.violations == []


def test_a_command_is_not_held_by_a_kept_decision(site: InProcessSite) -> None:
    assert site.plant.load_on("hvac")
    site.submit("shed_load", {"load_id": "hvac"})
    site.cycles(2)  # handed over during the first, taken in by the second
    assert not site.plant.load_on("hvac")
    assert site.store.flush(5.0)  # answered once its audit record is committed
    site.cycles(3)
    assert [r.outcome for r in site.results()] == ["accepted"]


def test_an_override_changed_outside_a_command_is_decided_at_once(site: InProcessSite) -> None:
    """The API's and a restart's changes to the overrides do not all come as commands."""
    site.cycles(1)
    site.controller.overrides.set_tier(site.config, "kitchen", "comfort")
    site.cycles(1)
    status = site.controller.status
    assert status is not None and status.snapshot.time_s == site.now
    kitchen = next(ld for ld in status.snapshot.loads if ld.load_id == "kitchen")
    assert kitchen.tier.label == "comfort"
