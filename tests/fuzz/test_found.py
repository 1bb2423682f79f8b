"""Sequences the state-machine fuzzer found that break a safety rule, kept as regression tests.

Each is the shrunk sequence hypothesis reported, replayed on the same machine
(`SiteMachine`: the real controller over in-process drivers on the plant, virtual
clock, 20 ms cycles). Fixed ones are plain regression tests; one that the mode machine
still fails is a strict xfail with the reason, so that fixing it shows as XPASS(strict)
and the marker (and the matching exclusion in test_modes_fuzz.py) must go.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.test_modes_fuzz import SiteMachine


@pytest.fixture
def machine() -> Iterator[SiteMachine]:
    machine = SiteMachine()
    try:
        yield machine
    finally:
        machine.teardown()


def islanded(machine: SiteMachine, cycles: int = 17) -> None:
    """Grid loss, then `cycles` cycles: islanded on charger_1 (the followers start injecting
    0.2 s after the island forms)."""
    machine.plant.grid_loss()
    machine.cycles(cycles)
    assert machine.controller.modes.mode.value == "islanded"


def test_unknown_loads_are_not_a_pv_surplus(machine: SiteMachine) -> None:
    islanded(machine, 13)  # 10.4 kW of loads, 6 kW of PV, former at 4.4 kW
    machine.plant.silence("panel_main")
    machine.cycles(6)  # past the 60 ms grace: panel_main unavailable, loads "0 W"
    machine.plant.set_pv_available(0.0)  # a cloud, or the PV inverter tripping
    machine.cycles(5)
    assert machine.plant.violations == []


def test_pv_trip_in_island(machine: SiteMachine) -> None:
    islanded(machine)
    machine.cycles(1)
    machine.plant.set_pv_available(20000.0)  # full sun: followers absorb the surplus
    machine.cycles(1)
    machine.plant.set_pv_available(0.0)  # the inverter trips
    machine.cycles(5)
    assert machine.plant.violations == []


def test_silent_charging_charger_in_a_new_island(machine: SiteMachine) -> None:
    machine.plant.silence("charger_1")  # grid-connected: told to charge at 11 kW
    machine.cycles(1)
    assert machine.plant.chargers["charger_1"].power_setpoint_w == -11000
    machine.plant.flicker(0.5, 1)
    machine.cycles(1)
    machine.cycles(5, 0.2)
    assert machine.plant.violations == []


def test_no_black_start_onto_loads_that_cannot_be_shed(machine: SiteMachine) -> None:
    machine.plant.silence("panel_main")
    machine.cycles(1)
    for _ in range(9):
        machine.plant.grid_loss()
        machine.cycles(1)
    assert machine.plant.violations == []


def test_losing_a_follower_in_island(machine: SiteMachine) -> None:
    islanded(machine)
    machine.plant.fault("pv")
    machine.cycles(1)
    machine.plant.unplug("charger_1")  # the former: black start on charger_2
    machine.cycles(1)
    machine.plant.unplug("charger_4")
    machine.cycles(50, 0.2)  # loads restored onto charger_2 + charger_3
    assert machine.controller.modes.mode.value == "islanded"
    machine.plant.unplug("charger_3")  # the last follower leaves while discharging
    machine.cycles(5)
    assert machine.plant.violations == []
