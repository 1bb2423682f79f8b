"""In what order a cycle's commands reach the field: phases, from a pure plan.

A grid-former picks up every change of load or supply the instant it happens. If a
follower's setpoint comes down before the relays that shed the load behind it have
opened, the former carries the difference for that moment, and on a big site (12
loads shed at once) that is more than its rating: the island collapses. So the order
in which commands land is a property of the outputs, not of dict iteration order:

    BREAKER      the PCC first (islanding opens it before anything else moves)
    SHED         relays that switch off (a board's other channels keep their state)
    SUPPLY_UP    sources that give more (a follower's setpoint up, FORM, an outlet on)
    STOP_FORMER  a grid-former told to stop forming (the island is stopped from its source:
                 followers stopped first would leave it carrying their load alone)
    SUPPLY_DOWN  sources that give less (setpoint down, OFF, an outlet off, PV limited)
    RESTORE      relays that switch on

The write phase sends each phase's writes together and awaits them before the next;
a shed or a supply increase that fails cancels the phases after it (restoring a load,
or lowering supply, on top of a failed shed is what collapses an island). The
decision side does its part too: an island's setpoints are worked out on the loads
still on in the field, so they come down only once the relays have confirmed off.

Only differences are written: a command the device already reflects is not sent, and
one it does not reflect is re-asserted after `REASSERT_S`. `plan_writes` is pure: the
caller passes the readings and what it wrote when, and records what the plan says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from resilience.config import SiteConfig
from resilience.devices import (
    ChargerCommand,
    ChargerReading,
    InverterReading,
    OutletReading,
    PanelReading,
)
from resilience.model import BreakerCommand, ChargerMode, ChargerState
from resilience.outputs import Outputs

POWER_DEADBAND_W = 50.0  # a setpoint change smaller than this is not worth a write
REASSERT_S = 2.0  # rewrite a command the device does not reflect after this long


class Phase(IntEnum):
    BREAKER = 0
    SHED = 1
    SUPPLY_UP = 2
    STOP_FORMER = 3
    SUPPLY_DOWN = 4
    RESTORE = 5


CANCELLING = frozenset({Phase.SHED, Phase.SUPPLY_UP, Phase.STOP_FORMER})
"""A failed write in one of these phases cancels every later phase of the cycle: no supply
comes down onto a load not shed, no load goes on before the supply for it, and nothing is
restored onto a grid-former not yet told to stop forming (one with a PCC interlock, told
FORM, forms under the whole bus the instant the PCC opens)."""


class Kind(IntEnum):
    """Which driver call a write is."""

    BREAKER = 0
    CHARGER = 1
    RELAYS = 2
    OUTLET = 3
    PV_LIMIT = 4


@dataclass(frozen=True)
class Write:
    device_id: str
    kind: Kind
    key: str  # what the caller keys "written at" by
    value: Any  # BreakerCommand | ChargerCommand | tuple[bool, ...] | bool | float


@dataclass(frozen=True)
class WritePlan:
    """The writes of one cycle by phase, and the wishes the field already reflects
    (the caller records both as written now, so re-assertion counts from here)."""

    phases: tuple[tuple[Phase, tuple[Write, ...]], ...]
    reflected: Mapping[str, Any] = field(default_factory=dict)

    def writes(self) -> list[Write]:
        return [w for _, writes in self.phases for w in writes]


def _due(written: Mapping[str, tuple[Any, float]], key: str, value: Any, now_s: float) -> bool:
    """Write when the wish changed, or the device has not reflected it for a while."""
    last = written.get(key)
    if last is None or last[0] != value:
        return True
    return now_s - last[1] >= REASSERT_S


def same_charger_command(a: Any, b: ChargerCommand) -> bool:
    if a is b:
        return True  # the mode machine hands back an unchanged command as the same object
    if not isinstance(a, ChargerCommand):
        return False
    return (
        a.mode is b.mode
        and abs(a.power_setpoint_w - b.power_setpoint_w) < POWER_DEADBAND_W
        and abs(a.frequency_setpoint_hz - b.frequency_setpoint_hz) < 0.005
        and abs(a.voltage_setpoint_v - b.voltage_setpoint_v) < 0.5
        and abs(a.min_soc_pct - b.min_soc_pct) < 0.05
    )


def _gives_w(mode: ChargerMode, setpoint_w: float) -> float:
    """What a charger in this mode gives the bus [W]; a former gives whatever it takes."""
    if mode is ChargerMode.FORM:
        return math.inf
    if mode is ChargerMode.FOLLOW:
        return setpoint_w
    return 0.0


def _charger_phase(command: ChargerCommand, last: Any, reading: ChargerReading) -> Phase:
    after = _gives_w(command.mode, command.power_setpoint_w)
    if isinstance(last, ChargerCommand):
        before = _gives_w(last.mode, last.power_setpoint_w)
    else:
        before = _gives_w(reading.mode, reading.power_w)
    forming = (
        reading.mode is ChargerMode.FORM
        or reading.state is ChargerState.FORMING
        or reading.told_mode is ChargerMode.FORM  # held to following by its PCC interlock
    )
    if command.mode is not ChargerMode.FORM and (forming or before == math.inf):
        return Phase.STOP_FORMER
    return Phase.SUPPLY_UP if after > before else Phase.SUPPLY_DOWN


PanelChannels = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
"""Each load panel of a site with its loads' (load id, channel), in the site file's order."""


def panel_channels(config: SiteConfig) -> PanelChannels:
    """The site's loads by panel: a site file's wiring, worked out once, not every cycle."""
    panels: dict[str, list[tuple[str, int]]] = {}
    for load in config.loads:
        panels.setdefault(load.panel, []).append((load.id, load.channel))
    return tuple([(panel_id, tuple(loads)) for panel_id, loads in panels.items()])


def plan_writes(
    outputs: Outputs,
    readings: Mapping[str, Any],
    written: Mapping[str, tuple[Any, float]],
    now_s: float,
    config: SiteConfig,
    panels: PanelChannels | None = None,
) -> WritePlan:
    """The cycle's writes in phases. `readings` holds the answering devices' readings
    (a device without one is never written: its command would land on unknown state).
    `panels` is `panel_channels(config)`, when the caller keeps it."""
    phases: dict[Phase, list[Write]] = {phase: [] for phase in Phase}
    reflected: dict[str, Any] = {}

    breaker_id = config.grid.pcc_breaker
    if outputs.pcc is not BreakerCommand.NONE and readings.get(breaker_id) is not None:
        phases[Phase.BREAKER].append(Write(breaker_id, Kind.BREAKER, breaker_id, outputs.pcc))

    for charger_id, command in outputs.chargers.items():
        reading: ChargerReading | None = readings.get(charger_id)
        if reading is None:
            continue
        last_written = written.get(charger_id)
        last = last_written[0] if last_written is not None else None
        if last_written is not None and same_charger_command(last, command):
            # A charger whose held setpoint is unknown (an OCPP station that reconnected
            # and took nothing since) does not show the command, whatever its mode says;
            # nor one that reads another mode told (an interlocked former told FORM runs
            # FOLLOW while the PCC is closed, and forms the instant it opens).
            shown = (
                reading.mode is command.mode
                and reading.held_setpoint_w is not None
                and reading.told_mode in (None, command.mode)
            ) or reading.state is ChargerState.FAULT
            if shown or now_s - last_written[1] < REASSERT_S:
                continue
        phase = _charger_phase(command, last, reading)
        phases[phase].append(Write(charger_id, Kind.CHARGER, charger_id, command))

    wants = outputs.loads
    if panels is None:
        panels = panel_channels(config)
    for panel_id, channels in panels:
        panel: PanelReading | None = readings.get(panel_id)
        if panel is None:
            continue
        present = panel.relay_command
        final = list(present)
        wanted = False
        for load_id, channel in channels:
            on = wants.get(load_id)
            if on is not None and channel < len(final):
                final[channel] = on
                wanted = True
        if not wanted:
            continue
        vector = tuple(final)
        if vector == present:
            reflected[panel_id] = vector
            continue
        if not _due(written, panel_id, vector, now_s):
            continue
        # Sheds first, on their own: the board's restores wait for the supply to rise.
        shed = tuple([on and final[i] for i, on in enumerate(present)])
        if shed != present:
            phases[Phase.SHED].append(Write(panel_id, Kind.RELAYS, panel_id, shed))
        if vector != shed:
            phases[Phase.RESTORE].append(Write(panel_id, Kind.RELAYS, panel_id, vector))

    for outlet_id, enabled in outputs.outlets.items():
        outlet: OutletReading | None = readings.get(outlet_id)
        if outlet is None:
            continue
        key = f"{outlet_id}.enable"
        if outlet.enabled == enabled:
            reflected[key] = enabled
            continue
        if _due(written, key, enabled, now_s):
            phase = Phase.SUPPLY_UP if enabled else Phase.SUPPLY_DOWN
            phases[phase].append(Write(outlet_id, Kind.OUTLET, key, enabled))

    if outputs.pv_limit_pct is not None:
        for inverter_id in config.pv_inverters:
            inverter: InverterReading | None = readings.get(inverter_id)
            if inverter is None:
                continue
            key = f"{inverter_id}.limit"
            if abs(inverter.limit_pct - outputs.pv_limit_pct) < 0.5:
                reflected[key] = outputs.pv_limit_pct
                continue
            if _due(written, key, outputs.pv_limit_pct, now_s):
                up = outputs.pv_limit_pct > inverter.limit_pct
                phase = Phase.SUPPLY_UP if up else Phase.SUPPLY_DOWN
                phases[phase].append(Write(inverter_id, Kind.PV_LIMIT, key, outputs.pv_limit_pct))

    return WritePlan(
        tuple([(phase, tuple(writes)) for phase, writes in phases.items() if writes]),
        reflected,
    )
