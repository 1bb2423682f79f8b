"""Storm watch: what a severe-weather alert asks of the site, as a pure decision.

Like Tesla's Storm Watch for one home, but for a shelter: when a credible
storm alert arrives, charge every plugged vehicle to full while the grid is
still there, and leave the grid on purpose (a planned island) shortly before
the storm's onset, so the shelter is already islanded, with full batteries,
when the lines come down.

`storm_watch(alert, now_wall, exercise=...)` returns a `StormWatch`: whether
to act, why (or why not), the onset and expiry, and when to request the
planned island. Nothing here talks to devices or to the controller; a drill
runner or `resilience cap-alert` submits `planned_island` at `island_at_wall`.

An alert counts when all of these hold:
- status `Actual`, or `Exercise` during a drill (`exercise=True`); never Test,
  System or Draft;
- msgType `Alert` or `Update` (a `Cancel` ends a storm watch);
- an info block about weather (category `Met`, or a storm word in its event)
  with severity `Severe` or `Extreme`, urgency not `Past`, certainty not
  `Unlikely`, and not yet expired.

Times are Unix seconds [s].
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.cap import CapAlert, CapInfo

__all__ = ["PRE_ISLAND_LEAD_S", "StormWatch", "storm_watch"]

PRE_ISLAND_LEAD_S = 1800.0
"""[s] request the planned island this long before the storm's onset."""

STORM_WORDS = (
    "storm",
    "wind",
    "gale",
    "snow",
    "blizzard",
    "ice",
    "freezing",
    "winter",
    "hurricane",
    "typhoon",
    "cyclone",
    "tornado",
    "thunder",
    "lodos",
    "poyraz",
    "fırtına",
    "kar",
)
ACTIONABLE_SEVERITIES = ("Severe", "Extreme")


@dataclass(frozen=True)
class StormWatch:
    """The decision about one alert. `active` False means: carry on as usual."""

    active: bool
    reason: str
    charge_to_full: bool = False
    onset_wall: float | None = None
    expires_wall: float | None = None
    island_at_wall: float | None = None
    event: str = ""
    cancelled: bool = False


def _about_weather(info: CapInfo) -> bool:
    event = info.event.lower()
    return "Met" in info.categories or any(word in event for word in STORM_WORDS)


def storm_watch(
    alert: CapAlert,
    now_wall: float,
    *,
    exercise: bool = False,
    lead_s: float = PRE_ISLAND_LEAD_S,
) -> StormWatch:
    """Decide what `alert`, received at `now_wall` [s], asks of the site."""
    wanted = ("Actual", "Exercise") if exercise else ("Actual",)
    if alert.status not in wanted:
        extra = "" if exercise else " (an Exercise counts only during a drill)"
        return StormWatch(False, f"status {alert.status} is not acted on{extra}")
    if alert.msg_type == "Cancel":
        return StormWatch(
            False, f"alert {alert.references or alert.identifier} cancelled", cancelled=True
        )
    if alert.msg_type not in ("Alert", "Update"):
        return StormWatch(False, f"msgType {alert.msg_type} is not acted on")
    reasons = []
    for info in alert.infos:
        if not _about_weather(info):
            reasons.append(f"{info.event!r} is not a storm")
            continue
        if info.severity not in ACTIONABLE_SEVERITIES:
            reasons.append(f"{info.event!r} severity {info.severity} is below Severe")
            continue
        if info.urgency == "Past" or info.certainty == "Unlikely":
            reasons.append(f"{info.event!r} is {info.urgency.lower()}/{info.certainty.lower()}")
            continue
        expires = info.expires.timestamp() if info.expires is not None else None
        if expires is not None and expires <= now_wall:
            reasons.append(f"{info.event!r} expired")
            continue
        onset = info.onset.timestamp() if info.onset is not None else now_wall
        island_at = max(now_wall, onset - lead_s)
        return StormWatch(
            active=True,
            reason=(
                f"{alert.status} {info.severity.lower()} {info.event!r}"
                f" ({', '.join(info.areas) or 'no area given'}): charge to full, island"
                f" {lead_s / 60:.0f} min before onset"
            ),
            charge_to_full=True,
            onset_wall=onset,
            expires_wall=expires,
            island_at_wall=island_at,
            event=info.event,
        )
    return StormWatch(False, "; ".join(reasons) or "no info block to act on")
