"""Desired outputs of one control cycle, and what the cycle reports about itself.

Modes and policies decide; only the write phase talks to devices. An `Outputs`
is what the decision wants the field to look like after this cycle; the write
phase compares it with what the devices report and writes the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resilience.devices import ChargerCommand
from resilience.model import BreakerCommand


@dataclass(frozen=True)
class Outputs:
    pcc: BreakerCommand = BreakerCommand.NONE  # NONE leaves the breaker as it is
    chargers: dict[str, ChargerCommand] = field(default_factory=dict)
    loads: dict[str, bool] = field(default_factory=dict)  # relay on/off, by load id
    outlets: dict[str, bool] = field(default_factory=dict)  # V2L contactor, by outlet id
    pv_limit_pct: float | None = None  # None leaves the inverter as it is


@dataclass(frozen=True)
class Transition:
    time_s: float
    source: str
    dest: str
    trigger: str
    reason: str


@dataclass(frozen=True)
class AlarmChange:
    code: str
    raised: bool  # False = cleared
    severity: str = "warning"
    message: str = ""


@dataclass(frozen=True)
class Decision:
    """Everything one decision step produced: outputs, transitions, alarm changes, notes."""

    outputs: Outputs
    transitions: tuple[Transition, ...] = ()
    alarms: tuple[AlarmChange, ...] = ()
    notes: tuple[str, ...] = ()  # shed/restore and other dispatch events worth an event row
    # The endurance policy per supply circuit (`modes.CircuitEnergy`), for the status.
    energy: Mapping[str, Any] = field(default_factory=dict)
