"""The site fuzzer with OCPP stations: generated sites that mix Modbus chargers and OCPP ones.

Each example draws a site from `tests.sites.ocpp_site_documents()`: a smaller generated
Modbus site (1 to 4 chargers, up to 16 loads) plus 1 to 3 OCPP stations, each of version
2.1, 2.0.1 or 1.6, role follower or load, a discharge_method for the older versions
("none" or "negative_limit") and often a car of its own. The controller runs against the
plant as in test_sites_fuzz.py (`SitesMachine`, every rule of it: grid events, stalls,
Modbus faults, donors, operator commands ...), and with the controller's own central
system and one simulated station per OCPP station over in-memory pipes
(`tests.fuzz.machine.Harness`). The rules added here act on the stations:

- the cars at the stations start (`CAR_CASES`) below, at or near their owners' reserves,
  with their own floor (evMinV2XEnergyRequest, 2.1) below or above it; long runs (60 to
  300 s) let them drain; most examples start with a grid loss at night;
- the car's own figures (2.1): its floor (at, under or over the owner's reserve), a
  departure time, active or passive anti-islanding;
- the link cut and restored;
- the station faulted (StatusNotification Faulted, no power) and cleared;
- a station that rejects every command, or answers slower than `[ocpp] call_timeout_s`;
- an out-of-schema message;
- cars leaving and arriving at a station (the inherited plug / unplug / donor rules pick
  stations as well as Modbus chargers).

After every step the plant must have recorded no violation (rules 1-4, island collapse)
and the controller must not have commanded CLOSE outside resynchronisation.

Cost: each in-process OCPP exchange costs about 0.7 ms, and a slow station costs real
time (its answers are late in real time: the central system times its calls in real
time, so the sites here have `call_timeout_s` = 0.05 s and a slow station answers in
0.1 s). CI runs a derandomised `EXAMPLES` x `STEPS` = 40 x 30: 10 s on a quiet machine,
30 s on one busy core (plus 3-9 s for the version check below).
A long random run, with shrinking:

    RESILIENCE_FUZZ_RANDOM=1 RESILIENCE_OCPP_FUZZ_EXAMPLES=400 RESILIENCE_OCPP_FUZZ_STEPS=50 \\
        .venv/bin/pytest tests/fuzz/test_ocpp_sites_fuzz.py -q -p no:cacheprovider

`RESILIENCE_OCPP_FUZZ_EXAMPLES` / `RESILIENCE_OCPP_FUZZ_STEPS` set this file's counts;
`RESILIENCE_FUZZ_SHRINK=1` shrinks a derandomised run too. A failure prints the trace and
the falsifying example (`state.site(doc={...})`): replay it as test_sites_found.py does.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from firmware_sim.ocpp_faults import clear_station_faults, inject_station_fault
from firmware_sim.ocpp_station import SimStation
from firmware_sim.plant import PlantInit
from resilience.config import SiteConfig
from resilience.steady import STEADY_MODES
from tests.fuzz.test_sites_fuzz import Pick, SitesMachine
from tests.sites import ocpp_site_documents

EXAMPLES = int(os.environ.get("RESILIENCE_OCPP_FUZZ_EXAMPLES") or "40")
STEPS = int(os.environ.get("RESILIENCE_OCPP_FUZZ_STEPS") or "30")
CALL_TIMEOUT_S = 0.05
"""[s] real time: the sites' `[ocpp] call_timeout_s` (see the module docstring)."""
CAR_CASES: dict[str, tuple[float, float | None]] = {
    "below the reserve, own floor lower": (-0.5, -10.0),
    "at the reserve, own floor lower": (0.05, -10.0),
    "near the reserve, own floor higher": (0.5, 15.0),
    "near the reserve": (0.3, None),
}
"""Cars at the stations at the start: (SoC - owner's reserve [%], own floor - owner's
reserve [%] or None for none told)."""
SLOW_DELAY_S = 0.1
"""[s] real time: how late a slow station answers (twice the call timeout)."""


class OcppSitesMachine(SitesMachine):
    """A generated site with OCPP stations; `SitesMachine`'s rules and the station rules."""

    soc_margin: float | None = None

    @initialize(
        doc=ocpp_site_documents(call_timeout_s=CALL_TIMEOUT_S),
        night_island=st.booleans(),
        cars=st.sampled_from([None, *CAR_CASES]),
    )
    def site(
        self, doc: dict[str, Any], night_island: bool = False, cars: str | None = None
    ) -> None:
        """`night_island`: the example starts with the grid lost at night, so that most
        examples reach the island the stations must help carry. `cars`: how the cars at
        the stations start (`CAR_CASES`: SoC against the owner's reserve, and the car's
        own floor, which 2.1 tells; below the reserve only the controller keeps it)."""
        soc_margin, floor_offset = CAR_CASES[cars] if cars is not None else (None, None)
        self.soc_margin = soc_margin
        SitesMachine.site(self, doc)
        assert self.stations is not None
        self.station_ids = sorted(self.stations.stations)
        versions = {
            name: self.config.devices[name].ocpp.version  # type: ignore[union-attr]
            for name in self.station_ids
        }
        self.note(f"stations: {versions}; cars: {cars}")
        if floor_offset is not None:
            for name in self.station_ids:
                vehicle = self.plant.chargers[name].vehicle
                if vehicle is not None:
                    floor = min(100.0, max(0.0, vehicle.reserve_soc_pct + floor_offset))
                    self.stations.stations[name].model.car.floor_soc_pct = floor
        if night_island:
            self.note("night, grid loss")
            for inverter in self.plant.inverters:
                self.plant.set_pv_available(0.0, inverter)
            self.plant.grid_loss()
            self.cycles(max(1, int(3.0 / self.cycle_s)))

    def start(self, config: SiteConfig, init: PlantInit, cycle_s: float | None = None) -> None:
        if self.soc_margin is not None:
            socs = dict(init.soc_pct)
            for vehicle in config.vehicles:
                if vehicle.charger in config.ocpp_stations:
                    socs[vehicle.id] = vehicle.reserve_soc_pct + self.soc_margin
            init = dataclasses.replace(init, soc_pct=socs)
        super().start(config, init, cycle_s)

    def station(self, which: int) -> tuple[str, SimStation]:
        assert self.stations is not None
        name = self.pick(self.station_ids, which)
        return name, self.stations.stations[name]

    # ------------------------------------------------------------------ the car's figures
    @rule(
        which=Pick,
        floor_offset=st.sampled_from([None, -10.0, 0.0, 15.0]),
        departure=st.sampled_from([None, 5.0, 60.0]),
        active=st.booleans(),
    )
    def car_figures(
        self, which: int, floor_offset: float | None, departure: float | None, active: bool
    ) -> None:
        """The car at the station says its own floor (relative to the owner's reserve),
        when it leaves, and how it detects islanding (2.1 tells all three; 2.0.1 only
        the departure; 1.6 nothing)."""
        name, station = self.station(which)
        vehicle = self.plant.chargers[name].vehicle
        if vehicle is None:
            return
        car = station.model.car
        car.floor_soc_pct = (
            None
            if floor_offset is None
            else min(100.0, max(0.0, vehicle.reserve_soc_pct + floor_offset))
        )
        car.departure_s = None if departure is None else self.now + departure
        car.islanding_methods = ("ImpedanceMeasurement",) if active else ("UVP_OVP",)
        self.note(
            f"{name} car: floor {car.floor_soc_pct}, departure in {departure} s,"
            f" {'active' if active else 'passive'} anti-islanding"
        )
        self.cycles(1)

    @rule(seconds=st.sampled_from([60.0, 300.0]))
    def long_run(self, seconds: float) -> None:
        """Time for the cars to drain through their reserves, if the controller let them:
        1 s steps while the site is in a steady mode, as a drill's slow steps, and cycles at
        the site's own period while a transition runs, as a drill's fast ones (the plant
        allows a break-before-make reconnection two control cycles: a 1 s step in the middle
        of one is the harness starving the controller, not the controller's fault)."""
        self.note(f"run {seconds:g} s")
        end = self.now + seconds
        while self.now < end - 1e-9:
            steady = self.controller.modes.mode in STEADY_MODES
            self.cycles(1, min(1.0 if steady else self.cycle_s, end - self.now))

    # ------------------------------------------------------------------ station faults
    @rule(which=Pick, n=st.integers(1, 30))
    def link_cut(self, which: int, n: int) -> None:
        """The link is cut for n cycles, then restored."""
        name, station = self.station(which)
        self.note(f"{name}: link cut for {n} cycles")
        inject_station_fault(station, "link_cut")
        self.cycles(n)
        self.note(f"{name}: link restored")
        station.restore_link()
        self.cycles(1)

    @rule(which=Pick)
    def link_cut_stays(self, which: int) -> None:
        name, station = self.station(which)
        self.note(f"{name}: link cut")
        inject_station_fault(station, "link_cut")
        self.cycles(1)

    @rule(which=Pick, kind=st.sampled_from(["faulted", "rejecting", "out_of_schema"]))
    def station_fault(self, which: int, kind: str) -> None:
        name, station = self.station(which)
        self.note(f"{name}: {kind}")
        inject_station_fault(station, kind)
        self.cycles(1)

    @rule(which=Pick, n=st.integers(1, 4))
    def slow(self, which: int, n: int) -> None:
        """The station answers late for n cycles (real time: kept short)."""
        name, station = self.station(which)
        self.note(f"{name}: slow for {n} cycles")
        inject_station_fault(station, "slow", delay_s=SLOW_DELAY_S)
        self.cycles(n)
        station.answer_delay_s = 0.0
        self.cycles(1)

    @rule(which=Pick)
    def station_recovers(self, which: int) -> None:
        name, station = self.station(which)
        self.note(f"{name}: every fault cleared")
        clear_station_faults(station)
        self.cycles(1)

    @precondition(lambda self: any(s.model.plugged for s in self._stations()))
    @rule(which=Pick)
    def car_leaves_station(self, which: int) -> None:
        plugged = [n for n, s in zip(self.station_ids, self._stations(), strict=True)
                   if s.model.plugged]  # fmt: skip
        name = self.pick(plugged, which)
        self.note(f"car leaves {name}")
        self.leave(name)
        self.cycles(1)

    def _stations(self) -> list[SimStation]:
        assert self.stations is not None
        return [self.stations.stations[n] for n in self.station_ids]


RANDOM = os.environ.get("RESILIENCE_FUZZ_RANDOM") is not None
SHRINK = RANDOM or os.environ.get("RESILIENCE_FUZZ_SHRINK") is not None
OcppSitesMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
    derandomize=not RANDOM,
    phases=list(Phase) if SHRINK else [p for p in Phase if p is not Phase.shrink],
)
test_ocpp_sites_machine = pytest.mark.timeout(3600)(OcppSitesMachine.TestCase)


def test_generated_stations_are_simulated_in_every_version() -> None:
    """Every station of a generated site gets a simulated station of its own version."""
    from hypothesis import given

    seen: set[str] = set()

    @settings(max_examples=30, deadline=None, derandomize=True)
    @given(ocpp_site_documents(call_timeout_s=CALL_TIMEOUT_S))
    def check(doc: dict[str, Any]) -> None:
        machine = OcppSitesMachine()
        try:
            machine.site(doc)
            assert machine.stations is not None
            for name, station in machine.stations.stations.items():
                version = machine.config.devices[name].ocpp.version  # type: ignore[union-attr]
                assert station.version == version
                seen.add(version)
        finally:
            machine.stop()

    check()
    assert seen == {"2.1", "2.0.1", "1.6"}
