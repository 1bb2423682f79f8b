"""The real controller against firmware_sim's plant, in process, on a virtual clock.

`InProcessSite(config)` wires `Controller` (snapshot, mode machine, policies, write
phase) to the plant's simulated devices through the real drivers over the in-process
transport (only Modbus framing is skipped), with a store in a temporary file. Tests
step it cycle by cycle and judge safety on `site.plant.violations`, never on what the
controller believes.

`scaled_site(...)` builds bigger sites from the reference site file, the way a user
who copies config/site.toml and adds chargers, loads and relay boards would.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import tomllib
from pathlib import Path
from typing import Any

from firmware_sim.inprocess import build_inprocess_drivers
from firmware_sim.plant import Plant, PlantInit
from resilience.config import SiteConfig, parse_site
from resilience.cycle import CommandResult, Controller
from resilience.model import Mode
from resilience.outputs import Decision
from resilience.store import Store
from tests.fuzz.machine import Tmp

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"


def reference_data(*, ocpp: bool = False) -> dict[str, Any]:
    """The reference site file as parsed TOML (a fresh copy each call); without its OCPP
    stations and their cars unless `ocpp` (these harnesses run no central system)."""
    data = copy.deepcopy(tomllib.loads(SITE.read_text(encoding="utf-8")))
    if not ocpp:
        stations = {n for n, d in data["devices"].items() if d.get("driver") == "ocpp"}
        data["devices"] = {n: d for n, d in data["devices"].items() if n not in stations}
        data["vehicles"] = [v for v in data["vehicles"] if v.get("charger") not in stations]
    return data


def scaled_site(
    chargers: int = 12,
    loads: int = 40,
    panels: int = 3,
    formers: int = 2,
    *,
    shared_gateway: bool = False,
    **dispatch: Any,
) -> SiteConfig:
    """A bigger shelter: `chargers` 11 kW chargers (the first `formers` grid-forming, with
    their fleet cars), `loads` bus loads spread over `panels` 16-channel relay boards (each
    on its own endpoint, or all behind one Modbus TCP gateway when `shared_gateway`: read
    every cycle in an island, more than two of them keep one gateway too busy for a 20 ms
    cycle, and check-config says so), the reference V2L circuits and PV.

    Loads cycle through the reference site's bus loads (tier and rating), so every tier
    has several members; comfort loads come last in the file, as a user would list them.
    """
    data = reference_data()
    devices: dict[str, Any] = data["devices"]
    template = devices["charger_3"]
    for name in [n for n in devices if n.startswith("charger_")]:
        del devices[name]
    data["vehicles"] = [v for v in data["vehicles"] if v.get("charger") is None]
    for i in range(1, chargers + 1):
        name = f"charger_{i}"
        devices[name] = {
            **template,
            "port": 16000 + i,
            "can_form": i <= formers,
            "pcc_interlock": i <= formers,
        }
        data["vehicles"].append(
            {
                "id": f"fleet_{i}",
                "name": f"Fleet car {i}",
                "charger": name,
                "capacity_wh": 77400.0,
                "reserve_soc_pct": 30.0,
            }
        )
    bus_templates = [load for load in data["loads"] if load.get("supply", "bus") == "bus"]
    v2l_loads = [load for load in data["loads"] if load.get("supply", "bus") != "bus"]
    del devices["panel_main"]
    boards = [f"board_{b + 1}" for b in range(panels)]
    for b, board in enumerate(boards):
        devices[board] = {
            "driver": "load_panel",
            "port": 17000 if shared_gateway else 17000 + b,
            "unit_id": b + 1,
            "channels": 16,
            # timeout_s left out: the least a relay board can meet (docs/registers.md)
        }
    tier_order = {"life_safety": 0, "critical": 1, "essential": 2, "comfort": 3}
    generated = []
    for i in range(loads):
        base = bus_templates[i % len(bus_templates)]
        generated.append(
            {
                **base,
                "id": f"{base['id']}_{i + 1}",
                "name": f"{base['name']} #{i + 1}",
                # Smaller than the reference loads: 40 of them on 2 formers must make sense.
                "rated_power_w": round(base["rated_power_w"] * 0.4, 1),
            }
        )
    generated.sort(key=lambda load: tier_order[load["tier"]])
    for i, load in enumerate(generated):
        load["panel"] = boards[i // 16]
        load["channel"] = i % 16
    data["loads"] = generated + v2l_loads
    data["dispatch"] = {**data.get("dispatch", {}), **dispatch}
    return parse_site(data, "scaled_site")


class InProcessSite:
    """The controller and the plant, stepped together on a virtual clock."""

    def __init__(
        self,
        config: SiteConfig,
        init: PlantInit | None = None,
        *,
        cycle_s: float | None = None,
        start_cycles: int = 3,
    ) -> None:
        self.config = config
        self.cycle_s = cycle_s or config.site.cycle_period_s
        self.now = 1000.0
        self.plant = Plant(config, init or PlantInit())
        self.loop = asyncio.new_event_loop()
        self.store = Store(Tmp.store_path(), clock=lambda: self.now, telemetry_flush_s=3600.0)
        self.store.start()
        self.controller = self._new_controller()
        self.decisions: list[Decision] = []
        self.pending: list[asyncio.Task[CommandResult]] = []
        self.cycles(start_cycles)

    def _new_controller(self) -> Controller:
        return Controller(
            self.config,
            build_inprocess_drivers(self.plant),
            self.store,
            clock=lambda: self.now,
            wall=lambda: 1.7e9 + self.now,
        )

    def restart(self) -> None:
        """A new controller on the same field and store, as after a SIGKILL: nothing of the
        old one's memory is carried over but what it stored (the plant runs on)."""
        for task in [*self.pending, *self.controller._answering, *self.controller._writing]:
            task.cancel()
        self.pending.clear()
        assert self.store.flush(5.0)
        self.controller = self._new_controller()

    @property
    def mode(self) -> Mode:
        return self.controller.modes.mode

    def close(self) -> None:
        for task in [*self.pending, *self.controller._answering]:
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
        self.store.close(timeout=5.0)
        with contextlib.suppress(OSError):
            self.store.path.unlink()

    def cycles(self, n: int, dt: float | None = None) -> None:
        step = self.cycle_s if dt is None else dt
        for _ in range(n):
            self.now += step
            self.plant.step(step)
            self.decisions.append(self.loop.run_until_complete(self.controller.cycle_once()))
            del self.decisions[:-50]

    def seconds(self, seconds: float) -> None:
        self.cycles(round(seconds / self.cycle_s))

    def submit(self, command: str, args: dict[str, Any] | None = None) -> None:
        """Queue an operator command; it is applied at the start of the next cycle."""
        coro = self.controller.submit(command, args or {}, actor="test", role="operator")
        self.pending.append(self.loop.create_task(coro))

    def results(self) -> list[CommandResult]:
        return [task.result() for task in self.pending if task.done()]

    def islanded(self, timeout_s: float = 5.0) -> None:
        """Grid loss, then cycles until the site is islanded (fails after `timeout_s`)."""
        self.plant.grid_loss()
        for _ in range(round(timeout_s / self.cycle_s)):
            self.cycles(1)
            if self.mode is Mode.ISLANDED and self.plant.bus_live:
                # followers start injecting a moment after the island forms
                self.seconds(0.5)
                return
        raise AssertionError(f"not islanded after {timeout_s} s: {self.mode}")
