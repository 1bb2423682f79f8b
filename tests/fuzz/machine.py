"""What the state-machine fuzzers share: the real controller and the plant on a virtual clock.

`Harness` holds one example's world: firmware_sim's `Plant` (the referee), the real
`Controller` (snapshot, mode machine, policies, write phase) reading and writing the
simulated register banks through the real drivers over the in-process transport, a
SQLite store, and the virtual clock they share. `cycles()` steps the plant and runs
one control cycle per step; `check()` is the referee's verdict after every step.
test_modes_fuzz.py (the reference site) and test_sites_fuzz.py (generated sites)
mix it into their `RuleBasedStateMachine`s; test_found.py replays sequences on it.

A site with OCPP stations gets the controller's own `CentralSystem` on the virtual clock
and one simulated station per station (2.1, 2.0.1 or 1.6; `firmware_sim.ocpp_inprocess`)
over in-memory pipes, as a drill runs them: each cycle the stations' timers run and what
they sent is handled before the controller cycles, and its commands have landed after.

`fuzz_timers()` shortens a site's long timers (return to service, planned-island and
resynchronisation timeouts, restore and emergency-exit delays) so that a few dozen
steps reach every mode; everything else is the site's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from firmware_sim.inprocess import build_inprocess_drivers
from firmware_sim.ocpp_inprocess import InProcessStations, inline_validation
from firmware_sim.plant import Plant, PlantInit
from resilience.config import SiteConfig
from resilience.cycle import Controller
from resilience.model import BreakerCommand, BreakerPosition, Mode
from resilience.ocpp import CentralSystem
from resilience.store import Store

WALL_OFFSET_S = 1.7e9
"""The controller's wall clock is the virtual clock plus this (a plausible Unix time)."""


def fuzz_timers(config: SiteConfig) -> SiteConfig:
    """`config` with its long timers shortened for fuzzing (see the module docstring).

    Loads here step by up to +50 % at any moment, also on a dark bus, so a black start
    keeps that much headroom (cold_load_factor 1.5, or the site's own if larger).
    """
    sync = config.sync
    return config.model_copy(
        update={
            "grid": config.grid.model_copy(
                update={"return_to_service_s": 2.0, "planned_island_timeout_s": 3.0}
            ),
            "sync": sync.model_copy(
                update={
                    "timeout_s": 10.0,
                    # a faster slip catches the grid sooner; below the window, or it never passes
                    "slip_frequency_hz": min(0.25, sync.max_frequency_diff_hz - 0.05),
                }
            ),
            "dispatch": config.dispatch.model_copy(
                update={
                    "restore_delay_s": 1.0,
                    "emergency_exit_delay_s": 3.0,
                    "cold_load_factor": max(1.5, config.dispatch.cold_load_factor),
                }
            ),
        }
    )


class Tmp:
    """One temporary directory for the whole run (a store file per example)."""

    directory = Path(tempfile.mkdtemp(prefix="resilience-fuzz-"))
    count = 0

    @classmethod
    def store_path(cls) -> Path:
        cls.count += 1
        return cls.directory / f"fuzz-{cls.count}.sqlite"


class Harness:
    """The controller and the plant, stepped together on a virtual clock."""

    config: SiteConfig
    cycle_s: float
    now: float
    plant: Plant
    loop: asyncio.AbstractEventLoop
    store: Store
    controller: Controller
    pending: list[asyncio.Task[Any]]
    restoring: set[str]
    bad_close: list[str]
    trace: list[str]
    started: bool = False
    csms: CentralSystem | None = None
    stations: InProcessStations | None = None
    _validation: contextlib.ExitStack | None = None

    def start(self, config: SiteConfig, init: PlantInit, cycle_s: float | None = None) -> None:
        self.config = config
        self.cycle_s = config.site.cycle_period_s if cycle_s is None else cycle_s
        self.now = 1000.0
        self.plant = Plant(config, init)
        self.loop = asyncio.new_event_loop()
        self.store = Store(Tmp.store_path(), clock=lambda: self.now, telemetry_flush_s=3600.0)
        self.store.start()
        drivers = build_inprocess_drivers(self.plant)
        if config.ocpp_stations:
            self.csms = CentralSystem(
                config,
                clock=lambda: self.now,
                wall=self.wall,
                events=lambda kind, message, data: self.store.record_event(
                    kind, message, data=data
                ),
                alarms=self._station_alarm,
            )
            drivers.update(
                {name: self.csms.driver(name, dev) for name, dev in config.ocpp_stations.items()}
            )
        self.controller = Controller(
            config, drivers, self.store, clock=lambda: self.now, wall=self.wall
        )
        if self.csms is not None:
            csms_drivers = list(self.csms.drivers.values())
            self.stations = InProcessStations(
                config,
                self.plant,
                self.csms.serve_connection,
                lambda: self.now,
                epoch_s=WALL_OFFSET_S,
                busy=lambda: any(driver.busy for driver in csms_drivers),
            )
            self._validation = contextlib.ExitStack()
            self._validation.enter_context(inline_validation())
            self.loop.run_until_complete(self.stations.start())
        self.pending = []
        # Loads an operator restored: excused until their panel can be commanded again
        # (the controller cannot repair the shed order through a panel that is silent).
        self.restoring = set()
        self.bad_close = []
        self.trace = []
        self.started = True
        self.cycles(3)

    def restart(self) -> None:
        """The controller killed between two cycles and started again on the same field and
        store (the crash test's SIGKILL, without the processes): the new one knows only what
        it stored and what it reads. Modbus sites only: OCPP stations would have to
        reconnect to a new central system."""
        assert self.csms is None, "a restart is for Modbus sites"
        old = self.controller
        for task in [*self.pending, *old._answering, *old._writing]:
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.pending = []
        assert self.store.flush(5.0)
        self.controller = Controller(
            self.config,
            build_inprocess_drivers(self.plant),
            self.store,
            clock=lambda: self.now,
            wall=self.wall,
        )
        self.note("controller restarted")
        self.cycles(1)

    def _station_alarm(self, code: str, raised: bool, severity: str, message: str) -> None:
        self.controller.raise_or_clear_alarm(code, raised, severity, message)

    def stop(self) -> None:
        if not self.started:
            return
        for task in [*self.pending, *self.controller._answering]:
            task.cancel()
        if self.stations is not None:
            self.loop.run_until_complete(self.stations.stop())
        self.loop.run_until_complete(asyncio.sleep(0))
        if self._validation is not None:
            self._validation.close()
        self.loop.close()
        self.store.close(timeout=5.0)
        with contextlib.suppress(OSError):
            self.store.path.unlink()

    def wall(self) -> float:
        return WALL_OFFSET_S + self.now

    # ------------------------------------------------------------------ time
    def cycles(self, n: int, dt: float | None = None) -> None:
        step = self.cycle_s if dt is None else dt
        for _ in range(n):
            self.now += step
            self.plant.step(step)
            if self.stations is not None:
                self.loop.run_until_complete(self.stations.step())
            decision = self.loop.run_until_complete(self.controller.cycle_once())
            if self.stations is not None:
                self.loop.run_until_complete(self.stations.settle())
            mode = self.controller.modes.mode
            if decision.outputs.pcc is BreakerCommand.CLOSE and mode is not Mode.RESYNCHRONISING:
                self.bad_close.append(f"t={self.now:.2f} CLOSE commanded in {mode}")
            for t in decision.transitions:
                self.trace.append(f"t={self.now:.2f} {t.source}->{t.dest} ({t.trigger})")
            for load in [load for load in self.restoring if self.answering(load)]:
                self.restoring.discard(load)
                self.judge_again(load)
            self.after_cycle()

    def judge_again(self, load: str) -> None:
        """An operator restored `load` and its panel answers: the shed order counts again."""
        self.plant.excuse_load(load, False)

    def after_cycle(self) -> None:
        """Hook: called after every control cycle."""

    def closing(self) -> bool:
        """The breaker is travelling to close: a grid that changes now changes under a close
        already committed to physics (the sync check passed before), which no controller can
        take back; the referee would blame the controller for the grid's timing."""
        return self.plant.breaker.travel_target is BreakerPosition.CLOSED

    # ------------------------------------------------------------------ operator
    def submit(self, command: str, args: dict[str, Any]) -> asyncio.Task[Any]:
        coro = self.controller.submit(command, args, actor="fuzz", role="operator")
        task = self.loop.create_task(coro)
        self.pending.append(task)
        return task

    def answering(self, load: str) -> bool:
        """The controller can act on `load`: its panel answers, and the controller is past
        starting (after a restart it commands nothing until it has read the breaker)."""
        panel = self.plant.loads[load].spec.panel
        return (
            self.plant.comm_fault(panel) is None
            and self.controller.slots[panel].available
            and self.controller.modes.mode is not Mode.STARTING
        )

    # ------------------------------------------------------------------ the referee
    def note(self, text: str) -> None:
        self.trace.append(f"t={self.now:.2f} {text}")

    def check(self) -> None:
        """The plant recorded no violation and no CLOSE was commanded outside resync."""
        assert not self.bad_close, self.bad_close
        if self.plant.violations:
            tail = "\n".join(self.trace[-40:])
            raise AssertionError(f"{self.plant.violations}\nlast events:\n{tail}")
