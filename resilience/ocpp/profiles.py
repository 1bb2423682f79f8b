"""Charging profiles and schedule updates the central system sends (pure builders).

OCPP's sign: a setpoint > 0 charges the car, < 0 discharges it; the controller's is the
opposite (+ = discharge into the bus). Every schedule is checked `D <= S <= L` and
`D <= 0 <= L` (D = -the most the car may give, L = the most it may take) before it is
built: the library does not check it and a station need not either.

Payloads are snake_case dicts, as the `ocpp` library's `call` payload classes take them
(it converts the keys to camelCase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from resilience.devices import ChargerCommand
from resilience.model import ChargerMode

__all__ = [
    "DYNAMIC_PROFILE_ID",
    "IDLE_PROFILE_ID",
    "LIMIT_PROFILE_ID",
    "Schedule",
    "dynamic_profile",
    "idle_profile",
    "limit_profile_16",
    "limit_profile_201",
    "schedule_for",
    "schedule_update",
]

IDLE_PROFILE_ID = 1
"""2.1: the Idle profile at stack level 0, what a station falls back to (the dead-man)."""
DYNAMIC_PROFILE_ID = 2
"""2.1: the Dynamic CentralSetpoint profile at stack level 1, updated per setpoint."""
LIMIT_PROFILE_ID = 1
"""2.0.1 / 1.6: the one TxDefaultProfile limit, replaced per command."""


@dataclass(frozen=True)
class Schedule:
    """One CentralSetpoint period, OCPP signs [W]: setpoint S, limit L, discharge limit D."""

    setpoint_w: float
    limit_w: float
    discharge_limit_w: float

    def __post_init__(self) -> None:
        s, lim, d = self.setpoint_w, self.limit_w, self.discharge_limit_w
        if not all(math.isfinite(v) for v in (s, lim, d)):
            raise ValueError(f"schedule S={s} L={lim} D={d}: not finite")
        if not (d <= s <= lim and d <= 0.0 <= lim):
            raise ValueError(
                f"schedule setpoint {s:g} W, limit {lim:g} W, discharge limit {d:g} W breaks"
                " D <= S <= L and D <= 0 <= L"
            )


def schedule_for(
    command: ChargerCommand,
    *,
    max_charge_w: float,
    max_discharge_w: float,
    soc_pct: float,
) -> Schedule:
    """The schedule for a controller command, within the station's bounds now.

    L and D are the car's and the station's own bounds (what the reading offered); a
    command's own floor (`min_soc_pct`, what a Modbus unit enforces itself) is kept here:
    at or below it the discharge limit is 0. The setpoint is held within [D, L]: bounds
    that shrank between the cycle's read and the send (a car that changed its figures)
    lower the power, never raise it."""
    limit = max(0.0, max_charge_w)
    discharge = -max(0.0, max_discharge_w)
    if soc_pct <= command.min_soc_pct:
        discharge = 0.0
    wanted = -command.power_setpoint_w if command.mode is ChargerMode.FOLLOW else 0.0
    setpoint = min(limit, max(discharge, wanted))
    return Schedule(round(setpoint, 1), round(limit, 1), round(discharge, 1))


def _period(schedule: Schedule) -> dict[str, Any]:
    return {
        "start_period": 0,
        "operation_mode": "CentralSetpoint",
        "setpoint": schedule.setpoint_w,
        "limit": schedule.limit_w,
        "discharge_limit": schedule.discharge_limit_w,
    }


def idle_profile() -> dict[str, Any]:
    """2.1 stack level 0: Idle, 0 W; what the station runs when nothing above it is valid."""
    return {
        "id": IDLE_PROFILE_ID,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": IDLE_PROFILE_ID,
                "charging_rate_unit": "W",
                "charging_schedule_period": [
                    {"start_period": 0, "limit": 0.0, "operation_mode": "Idle"}
                ],
            }
        ],
    }


def dynamic_profile(
    schedule: Schedule,
    *,
    max_offline_duration_s: int,
    dyn_update_interval_s: int,
    stack_level: int = 1,
) -> dict[str, Any]:
    """2.1 stack level 1: Dynamic CentralSetpoint, valid `max_offline_duration_s` after the
    station loses us (then it drops it and falls back to the profile beneath: Idle, or at
    level 2 above a LocalFrequency profile, see local_frequency.py)."""
    return {
        "id": DYNAMIC_PROFILE_ID,
        "stack_level": stack_level,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Dynamic",
        "max_offline_duration": max_offline_duration_s,
        "dyn_update_interval": dyn_update_interval_s,
        "charging_schedule": [
            {
                "id": DYNAMIC_PROFILE_ID,
                "charging_rate_unit": "W",
                "charging_schedule_period": [_period(schedule)],
            }
        ],
    }


def schedule_update(schedule: Schedule) -> dict[str, Any]:
    """2.1 UpdateDynamicSchedule's schedule_update."""
    return {
        "setpoint": schedule.setpoint_w,
        "limit": schedule.limit_w,
        "discharge_limit": schedule.discharge_limit_w,
    }


def _now_iso(wall_s: float) -> str:
    return datetime.fromtimestamp(wall_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def limit_profile_201(limit_w: float, *, wall_s: float) -> dict[str, Any]:
    """2.0.1: a TxDefaultProfile limit [W] (negative = discharge, negative_limit vendors)."""
    return {
        "id": LIMIT_PROFILE_ID,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": LIMIT_PROFILE_ID,
                "start_schedule": _now_iso(wall_s),
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": round(limit_w, 1)}],
            }
        ],
    }


def limit_profile_16(limit_w: float, *, wall_s: float) -> dict[str, Any]:
    """1.6 csChargingProfiles: a TxDefaultProfile limit [W] (negative: see 2.0.1)."""
    return {
        "charging_profile_id": LIMIT_PROFILE_ID,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "start_schedule": _now_iso(wall_s),
            "charging_rate_unit": "W",
            "charging_schedule_period": [{"start_period": 0, "limit": round(limit_w, 1)}],
        },
    }
