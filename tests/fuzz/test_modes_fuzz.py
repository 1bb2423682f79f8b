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

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from firmware_sim.inprocess import build_inprocess_drivers
from firmware_sim.plant import MODBUS_EXCEPTION_CODES, Plant, PlantInit
from resilience.config import SiteConfig, load_site
from resilience.cycle import Controller
from resilience.model import BreakerCommand, BreakerPosition, Mode
from resilience.store import Store

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
EXAMPLES = int(os.environ.get("RESILIENCE_FUZZ_EXAMPLES", "200"))
STEPS = int(os.environ.get("RESILIENCE_FUZZ_STEPS", "50"))
CYCLE_S = 0.02


def fuzz_config() -> SiteConfig:
    """The reference site with its long timers shortened, so 50 steps reach every mode.

    charger_1 (the usual grid-former) has no PCC interlock, so it reconnects break before
    make; charger_2 keeps its interlock and reconnects seamlessly: both ways are fuzzed.
    """
    config = load_site(SITE)
    devices = dict(config.devices)
    devices["charger_1"] = devices["charger_1"].model_copy(update={"pcc_interlock": False})
    return config.model_copy(
        update={
            "devices": devices,
            "grid": config.grid.model_copy(
                update={"return_to_service_s": 2.0, "planned_island_timeout_s": 3.0}
            ),
            "sync": config.sync.model_copy(update={"timeout_s": 10.0, "slip_frequency_hz": 0.25}),
            # Loads here step by up to +50 % at any moment, also on a dark bus: the black
            # start keeps that much headroom (cold load pickup).
            "dispatch": config.dispatch.model_copy(
                update={
                    "restore_delay_s": 1.0,
                    "emergency_exit_delay_s": 3.0,
                    "cold_load_factor": 1.5,
                }
            ),
        }
    )


CONFIG = fuzz_config()
DEVICES = sorted(CONFIG.devices)
CHARGERS = sorted(CONFIG.chargers)
OUTLETS = sorted(CONFIG.outlets)
BUS_LOADS = sorted(load.id for load in CONFIG.loads if load.supply == "bus")
LOADS = sorted(load.id for load in CONFIG.loads)
VEHICLE_AT = {(v.charger or v.outlet): v for v in CONFIG.vehicles}
PV_RATING_W = sum(d.rating_w or 0.0 for d in CONFIG.pv_inverters.values())


class Tmp:
    """One temporary directory for the whole run (a store file per example)."""

    directory = Path(tempfile.mkdtemp(prefix="resilience-fuzz-"))
    count = 0

    @classmethod
    def store_path(cls) -> Path:
        cls.count += 1
        return cls.directory / f"fuzz-{cls.count}.sqlite"


class SiteMachine(RuleBasedStateMachine):
    """The controller and the plant, stepped together on a virtual clock."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.plant = Plant(CONFIG, PlantInit(pv_available_fraction=0.3))
        self.loop = asyncio.new_event_loop()
        self.store = Store(Tmp.store_path(), clock=lambda: self.now, telemetry_flush_s=3600.0)
        self.store.start()
        drivers = build_inprocess_drivers(self.plant)
        self.controller = Controller(
            CONFIG, drivers, self.store, clock=lambda: self.now, wall=lambda: 1.7e9 + self.now
        )
        self.pending: list[asyncio.Task[Any]] = []
        # Loads an operator restored: excused until their panel can be commanded again
        # (the controller cannot repair the shed order through a panel that is silent).
        self.restoring: set[str] = set()
        self.bad_close: list[str] = []
        self.trace: list[str] = []
        self.cycles(3)

    def teardown(self) -> None:
        for task in [*self.pending, *self.controller._answering]:
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
        self.store.close(timeout=5.0)
        with contextlib.suppress(OSError):
            self.store.path.unlink()

    # ------------------------------------------------------------------ time
    def cycles(self, n: int, dt: float = CYCLE_S) -> None:
        for _ in range(n):
            self.now += dt
            self.plant.step(dt)
            decision = self.loop.run_until_complete(self.controller.cycle_once())
            mode = self.controller.modes.mode
            if decision.outputs.pcc is BreakerCommand.CLOSE and mode is not Mode.RESYNCHRONISING:
                self.bad_close.append(f"t={self.now:.2f} CLOSE commanded in {mode}")
            for t in decision.transitions:
                self.trace.append(f"t={self.now:.2f} {t.source}->{t.dest} ({t.trigger})")
            for load in [load for load in self.restoring if self.answering(load)]:
                self.restoring.discard(load)
                self.plant.excuse_load(load, False)

    @rule(n=st.integers(1, 25), dt=st.sampled_from([0.02, 0.02, 0.05, 0.1]))
    def run(self, n: int, dt: float) -> None:
        self.cycles(n, dt)

    @rule(seconds=st.sampled_from([1.0, 3.0, 8.0]))
    def wait(self, seconds: float) -> None:
        self.cycles(int(seconds / 0.2), 0.2)

    # ------------------------------------------------------------------ grid
    def closing(self) -> bool:
        """The breaker is travelling to close: a grid that changes now changes under a close
        already committed to physics (the sync check passed before), which no controller can
        take back; the referee would blame the controller for the grid's timing."""
        return self.plant.breaker.travel_target is BreakerPosition.CLOSED

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
        kind=st.sampled_from(["silence", "garbage", "exception"]),
        code=st.sampled_from(sorted(MODBUS_EXCEPTION_CODES)),
    )
    def comm_fault(self, device: str, kind: str, code: int) -> None:
        self.note(f"{kind} {device}")
        if kind == "silence":
            self.plant.silence(device)
        elif kind == "garbage":
            self.plant.garbage(device)
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
    def submit(self, command: str, args: dict[str, Any]) -> None:
        coro = self.controller.submit(command, args, actor="fuzz", role="operator")
        self.pending.append(self.loop.create_task(coro))

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

    def answering(self, load: str) -> bool:
        panel = self.plant.loads[load].spec.panel
        return self.plant.comm_fault(panel) is None and self.controller.slots[panel].available

    # ------------------------------------------------------------------ the referee
    def note(self, text: str) -> None:
        self.trace.append(f"t={self.now:.2f} {text}")

    @invariant()
    def safe(self) -> None:
        assert not self.bad_close, self.bad_close
        if self.plant.violations:
            tail = "\n".join(self.trace[-40:])
            raise AssertionError(f"{self.plant.violations}\nlast events:\n{tail}")

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
