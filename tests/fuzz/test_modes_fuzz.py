"""State-machine fuzzing: random grid, device, vehicle and operator events against the plant.

A hypothesis `RuleBasedStateMachine` drives the real controller (`Controller`:
snapshot building, the mode machine, the policies, the write phase) on a
virtual clock against firmware_sim's `Plant`. The controller reads and writes
the simulated devices' register banks through the real drivers over the
in-process transport (`firmware_sim.inprocess`): only Modbus framing is skipped.
After every step the plant's referee must have recorded no violation (back-feed,
out-of-sync close, reserve breach, over-rating, wrong shed order, island
collapse), and the controller must never have commanded CLOSE outside
resynchronisation.

Injections stay within what the controller is answerable for: loads change by
at most +-50 % (a former cannot outrun an instant 10x load step), V2L circuits keep
their factor (an outlet over its rating trips in hardware), vehicles that come
back are the site file's own (with their registered reserve).

CI runs `max_examples` x `stateful_step_count` >= 10 000 steps; a longer run:

    RESILIENCE_FUZZ_EXAMPLES=2000 RESILIENCE_FUZZ_STEPS=100 .venv/bin/pytest tests/fuzz -q
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from firmware_sim.plant import MODBUS_EXCEPTION_CODES, PlantInit
from resilience.config import SiteConfig, load_site
from tests.fuzz.machine import Harness, fuzz_timers
from tests.sites import modbus_only

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
EXAMPLES = int(os.environ.get("RESILIENCE_FUZZ_EXAMPLES", "200"))
STEPS = int(os.environ.get("RESILIENCE_FUZZ_STEPS", "50"))
CYCLE_S = 0.02


def fuzz_config() -> SiteConfig:
    """The reference site with its long timers shortened, so 50 steps reach every mode.

    charger_1 (the usual grid-former) has no PCC interlock, so it reconnects break before
    make; charger_2 keeps its interlock and reconnects seamlessly: both ways are fuzzed.
    """
    config = fuzz_timers(modbus_only(load_site(SITE)))
    devices = dict(config.devices)
    devices["charger_1"] = devices["charger_1"].model_copy(update={"pcc_interlock": False})
    return config.model_copy(update={"devices": devices})


CONFIG = fuzz_config()
DEVICES = sorted(CONFIG.devices)
CHARGERS = sorted(CONFIG.chargers)
OUTLETS = sorted(CONFIG.outlets)
BUS_LOADS = sorted(load.id for load in CONFIG.loads if load.supply == "bus")
LOADS = sorted(load.id for load in CONFIG.loads)
VEHICLE_AT = {(v.charger or v.outlet): v for v in CONFIG.vehicles}
PV_RATING_W = sum(d.rating_w or 0.0 for d in CONFIG.pv_inverters.values())


class SiteMachine(Harness, RuleBasedStateMachine):
    """The controller and the plant of the reference site (`Harness`), and the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.start(CONFIG, PlantInit(pv_available_fraction=0.3), CYCLE_S)

    def teardown(self) -> None:
        self.stop()

    @rule(n=st.integers(1, 25), dt=st.sampled_from([0.02, 0.02, 0.05, 0.1]))
    def run(self, n: int, dt: float) -> None:
        self.cycles(n, dt)

    @rule()
    def restart(self) -> None:
        Harness.restart(self)

    @rule(seconds=st.sampled_from([1.0, 3.0, 8.0]))
    def wait(self, seconds: float) -> None:
        self.cycles(int(seconds / 0.2), 0.2)

    # ------------------------------------------------------------------ grid
    @rule()
    def grid_loss(self) -> None:
        if self.closing():
            return
        self.note("grid loss")
        self.plant.grid_loss()
        self.cycles(1)

    @rule()
    def grid_return(self) -> None:
        if self.closing():
            return
        self.note("grid return")
        self.plant.grid_return()
        self.cycles(1)

    @rule(pu=st.sampled_from([0.0, 0.5, 0.85, 1.1]), duration=st.sampled_from([0.1, 0.5, 3.0]))
    def sag(self, pu: float, duration: float) -> None:
        if self.closing():
            return
        self.note(f"sag {pu} pu {duration} s")
        self.plant.sag(pu, duration)
        self.cycles(1)

    # healthy halves shorter than return_to_service_s (2 s): no scheduled loss can land
    # inside a resynchronising close
    @rule(period=st.sampled_from([0.5, 1.0, 3.0]), count=st.integers(1, 4))
    def flicker(self, period: float, count: int) -> None:
        if self.closing():
            return
        self.note(f"flicker {period} s x {count}")
        self.plant.flicker(period, count)
        self.cycles(1)

    @rule(hz=st.sampled_from([49.0, 49.8, 50.0, 50.2, 51.0]))
    def grid_frequency(self, hz: float) -> None:
        if self.closing():
            return
        self.note(f"grid frequency {hz}")
        self.plant.set_grid_frequency(hz)
        self.cycles(1)

    # ------------------------------------------------------------------ devices
    @rule(
        device=st.sampled_from(DEVICES),
        kind=st.sampled_from(["silence", "garbage", "exception", "refuse_writes"]),
        code=st.sampled_from(sorted(MODBUS_EXCEPTION_CODES)),
    )
    def comm_fault(self, device: str, kind: str, code: int) -> None:
        self.note(f"{kind} {device}")
        if kind == "silence":
            self.plant.silence(device)
        elif kind == "garbage":
            self.plant.garbage(device)
        elif kind == "refuse_writes":
            self.plant.refuse_writes(device, code)
        else:
            self.plant.exception(device, code)
        self.cycles(1)

    @rule(device=st.sampled_from(DEVICES))
    def clear(self, device: str) -> None:
        self.note(f"clear {device}")
        self.plant.clear_fault(device)
        self.cycles(1)

    @rule(device=st.sampled_from([*CHARGERS, *OUTLETS, "pv", "pcc_breaker"]))
    def hardware_fault(self, device: str) -> None:
        self.note(f"fault {device}")
        self.plant.fault(device)
        self.cycles(1)

    @rule(failed=st.booleans())
    def breaker_fail_to_operate(self, failed: bool) -> None:
        self.note(f"breaker fail_to_operate={failed}")
        self.plant.fail_to_operate(failed)
        self.cycles(1)

    # ------------------------------------------------------------------ vehicles, PV, loads
    @rule(connector=st.sampled_from([*CHARGERS, *OUTLETS]))
    def unplug(self, connector: str) -> None:
        if self.plant._connector_vehicle(connector) is None:
            return
        self.note(f"unplug {connector}")
        self.plant.unplug(connector)
        self.cycles(1)

    @rule(connector=st.sampled_from([*CHARGERS, *OUTLETS]), soc=st.floats(5.0, 100.0))
    def plug(self, connector: str, soc: float) -> None:
        vehicle = VEHICLE_AT.get(connector)
        if vehicle is None or self.plant._connector_vehicle(connector) is not None:
            return
        if vehicle.id in self.plant.vehicles and any(
            v is self.plant.vehicles[vehicle.id] for _, v in self.plant._connected_vehicles()
        ):
            return
        self.note(f"plug {vehicle.id} at {connector} {soc:.1f} %")
        self.plant.plug(connector, vehicle.id, soc, vehicle.capacity_wh)
        self.cycles(1)

    @rule(fraction=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]))
    def pv(self, fraction: float) -> None:
        target = PV_RATING_W * fraction
        self.note(f"pv {target:.0f} W")
        self.plant.set_pv_available(target)
        self.cycles(1)

    @rule(load=st.sampled_from(BUS_LOADS), factor=st.sampled_from([0.5, 0.8, 1.0, 1.2, 1.5]))
    def load_factor(self, load: str, factor: float) -> None:
        self.note(f"load {load} x{factor}")
        self.plant.set_load_factor(load, factor)
        self.cycles(1)

    # ------------------------------------------------------------------ operator
    @rule()
    def planned_island(self) -> None:
        self.note("operator: planned island")
        self.submit("planned_island", {})
        self.cycles(1)

    @rule()
    def reconnect(self) -> None:
        self.note("operator: reconnect")
        self.submit("reconnect", {})
        self.cycles(1)

    @rule(load=st.sampled_from(LOADS))
    def shed(self, load: str) -> None:
        self.note(f"operator: shed {load}")
        self.plant.excuse_load(load)  # shed by hand: not a shed-order fault
        self.restoring.discard(load)
        self.submit("shed_load", {"load_id": load})
        self.cycles(1)

    @rule(load=st.sampled_from(LOADS))
    def restore(self, load: str) -> None:
        self.note(f"operator: restore {load}")
        self.submit("restore_load", {"load_id": load})
        self.restoring.add(load)
        self.cycles(1)

    # ------------------------------------------------------------------ the referee
    @invariant()
    def safe(self) -> None:
        self.check()

    @invariant()
    def controller_alive(self) -> None:
        assert self.controller.status is not None


SiteMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=os.environ.get("RESILIENCE_FUZZ_RANDOM") is None,
)
test_site_machine = pytest.mark.timeout(3600)(SiteMachine.TestCase)
