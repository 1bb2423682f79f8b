"""LocalFrequency: what an OCPP 2.1 station does by itself when it loses the controller.

Pure decisions, no I/O. OCPP 2.1 cannot tell a station to form the grid, so the island's
grid-former is a Modbus charger; when it droops (`devices.<id>.droop_hz`), the island's
frequency tells everyone how loaded it is: the no-load frequency (its setpoint, nominal
on an island) at 0 W, `droop_hz` lower at its full rating. A station in the LocalFrequency
operation mode follows a frequency-watt curve (`v2xFreqWattCurve`) matched to that line,
so with the link gone it still shares the island's load with the former in proportion to
its share, as paralleled droop units do, instead of dropping to Idle after
`maxOfflineDuration`.

The stack (docs/ocpp.md): Idle at level 0, LocalFrequency at level 1 with its own, longer
`maxOfflineDuration` (`[ocpp] local_frequency_offline_s`), CentralSetpoint at level 2 with
the dead-man's. While the link is up CentralSetpoint rules; past `max_offline_duration_s`
offline the station falls to LocalFrequency; past `local_frequency_offline_s` to Idle, so
a controller gone for good still ends in Idle.

Rule 3 offline. The station cannot see the owner's reserve (only the car's own floor,
which may be lower), and nobody can correct it while the link is down. So the controller
bounds what the curve may give before it is needed: from the link's loss the station runs
at most `max_offline_duration_s` on its last setpoint (at most the discharge it may give,
`central_max_w`) and then at most `local_frequency_offline_s - max_offline_duration_s` on
the curve, whose deepest point is the share `discharge_w`. Both together must fit in the
energy above the reserve (the stricter of the owner's and the car's), so the share is at
most (E_above - central part) / (curve time). The bound is recomputed every command as the
SoC moves (the profile is re-sent when it shrinks), so it holds whenever the link is lost;
a car too close to its reserve for a useful share (under `MIN_SHARE_FRACTION` of the
station's rating) gets no LocalFrequency profile at all and falls to Idle as before.

Signs: OCPP's (+ charges the car) in the curve and profile; the controller's (+ = into the
bus) nowhere here except where named `discharge_w` (a magnitude). Units: Hz, W, Wh, s, %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOCAL_FREQUENCY_PROFILE_ID",
    "MIN_SHARE_FRACTION",
    "IslandDroop",
    "LocalFrequencyShare",
    "freq_watt_curve",
    "local_frequency_profile",
    "local_frequency_share",
    "needs_resend",
    "offline_discharge_bound_w",
]

LOCAL_FREQUENCY_PROFILE_ID = 3
"""2.1: the LocalFrequency profile at stack level 1, between Idle (0) and CentralSetpoint (2)."""
LOCAL_FREQUENCY_STACK_LEVEL = 1
MIN_SHARE_FRACTION = 0.05
"""Below this share of the station's rating the curve is not worth the risk: refused."""
SHARE_STEP_FRACTION = 0.05
"""Shares are rounded down to steps of this fraction of the rating, so that a share that
shrinks with the SoC is re-sent a few times, not every cycle."""


@dataclass(frozen=True)
class IslandDroop:
    """The grid-formers' droop line: `no_load_hz` at 0 W, `no_load_hz - droop_hz` at full
    rating (every former of a site with LocalFrequency stations droops alike: check-config)."""

    no_load_hz: float
    droop_hz: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.no_load_hz) and self.no_load_hz > 0):
            raise ValueError(f"no-load frequency {self.no_load_hz} Hz is not a frequency")
        if not (math.isfinite(self.droop_hz) and self.droop_hz > 0):
            raise ValueError(f"droop {self.droop_hz} Hz: LocalFrequency needs a drooping former")


@dataclass(frozen=True)
class LocalFrequencyShare:
    """What a station's curve gives at the former's full load [W] (a magnitude, into the
    bus). The curve never charges: offline, a station takes nothing from the island."""

    discharge_w: float


def freq_watt_curve(
    droop: IslandDroop, share: LocalFrequencyShare
) -> tuple[tuple[float, float], ...]:
    """The v2xFreqWattCurve points (frequency [Hz], power [W], OCPP sign: + charges).

    0 W at the no-load frequency and above, the whole discharge share at the full-load
    frequency (no_load - droop) and below; linear between (flat beyond the ends, as the
    station reads a curve), so the station carries the same fraction of its share as the
    former of its rating. It never charges: with nobody watching, a station must not take
    power from an island (nor would a controller that counts a silent station's possible
    draw then over-supply the island into making it charge).

    Grid-connected at nominal it gives 0 W; a grid below nominal by df gets df / droop of
    the share (a frequency response into a live grid, within the same offline bound). On a
    dead bus there is no frequency: a follower gives nothing (the station's part; the
    plant enforces it, as it does for every follower).
    """
    f0, df = droop.no_load_hz, droop.droop_hz
    return ((f0 - df, -round(share.discharge_w, 1)), (f0, 0.0))


def offline_discharge_bound_w(
    *,
    soc_pct: float,
    reserve_soc_pct: float,
    capacity_wh: float,
    central_hold_s: float,
    central_max_w: float,
    curve_hold_s: float,
) -> float:
    """[W] the deepest the curve may discharge so that a link lost now cannot take the car
    below its reserve (module docstring): the energy above the reserve, less what the last
    CentralSetpoint may give for `central_hold_s`, spread over the curve's `curve_hold_s`."""
    if curve_hold_s <= 0:
        raise ValueError(f"curve_hold_s {curve_hold_s} s: LocalFrequency must outlast the dead-man")
    above_j = max(0.0, soc_pct - reserve_soc_pct) / 100.0 * capacity_wh * 3600.0
    left_j = above_j - central_hold_s * max(0.0, central_max_w)
    return max(0.0, left_j / curve_hold_s)


def local_frequency_share(
    *,
    rating_w: float,
    max_discharge_w: float,
    soc_pct: float,
    reserve_soc_pct: float,
    capacity_wh: float,
    central_hold_s: float,
    curve_hold_s: float,
) -> tuple[LocalFrequencyShare | None, str]:
    """The share to install, or None and why not.

    `max_discharge_w` is the station's and the car's limit now (what the reading offers:
    0 when it may not discharge); the share is also held to `offline_discharge_bound_w`
    and rounded down to `SHARE_STEP_FRACTION` of the rating."""
    if capacity_wh <= 0 or not math.isfinite(soc_pct):
        return None, "the car's capacity or SoC is unknown"
    bound = offline_discharge_bound_w(
        soc_pct=soc_pct,
        reserve_soc_pct=reserve_soc_pct,
        capacity_wh=capacity_wh,
        central_hold_s=central_hold_s,
        central_max_w=max_discharge_w,
        curve_hold_s=curve_hold_s,
    )
    step = SHARE_STEP_FRACTION * rating_w
    discharge = min(rating_w, max(0.0, max_discharge_w), bound)
    discharge = math.floor(discharge / step + 1e-9) * step
    if discharge < MIN_SHARE_FRACTION * rating_w:
        return None, (
            f"SoC {soc_pct:.1f} % is too close to the reserve {reserve_soc_pct:.1f} % to give"
            f" {MIN_SHARE_FRACTION:.0%} of {rating_w:g} W for the"
            f" {central_hold_s + curve_hold_s:g} s a lost link may last"
        )
    return LocalFrequencyShare(discharge), ""


def needs_resend(installed: LocalFrequencyShare | None, wanted: LocalFrequencyShare) -> bool:
    """Re-send when the installed curve would give more than allowed now (it must never),
    or when the allowed share grew (a car charged). Shares move in steps of
    `SHARE_STEP_FRACTION` of the rating, so this is a few times as a car nears its reserve."""
    return installed is None or wanted.discharge_w != installed.discharge_w


def local_frequency_profile(
    droop: IslandDroop, share: LocalFrequencyShare, *, max_offline_duration_s: int
) -> dict[str, Any]:
    """2.1 stack level 1: LocalFrequency on the curve, bounded by the share, valid
    `max_offline_duration_s` after the station loses the controller (then Idle beneath)."""
    return {
        "id": LOCAL_FREQUENCY_PROFILE_ID,
        "stack_level": LOCAL_FREQUENCY_STACK_LEVEL,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "max_offline_duration": max_offline_duration_s,
        "invalid_after_offline_duration": True,
        "charging_schedule": [
            {
                "id": LOCAL_FREQUENCY_PROFILE_ID,
                "charging_rate_unit": "W",
                "charging_schedule_period": [
                    {
                        "start_period": 0,
                        "operation_mode": "LocalFrequency",
                        "limit": 0.0,
                        "discharge_limit": -round(share.discharge_w, 1),
                        "v2x_freq_watt_curve": [
                            {"frequency": f, "power": p} for f, p in freq_watt_curve(droop, share)
                        ],
                    }
                ],
            }
        ],
    }
