"""What a site says to the city's emergency desk (EOC): topics and JSON payloads, pure.

Topics (version 1; ``<prefix>`` is ``shelter/v1/<district>/<site_id>``):

    <prefix>/state      retained, QoS 1: the site's latest state (`state_payload`), on
                        change at most every state_min_interval_s, at least every
                        state_max_interval_s. Always live, never historical
    <prefix>/event      QoS 1: one outbox row of kind "event" (mode changes, alarms raised
                        and cleared, accepted commands), in an `envelope`
    <prefix>/telemetry  QoS 1: one outbox row of kind "telemetry" (a state as it was), in
                        an `envelope`; what the EOC may lose first when a site's outbox fills
    <prefix>/status     retained, QoS 1: `status_payload`, "online" at connect (birth),
                        "offline" as the last will the broker publishes for a lost site
    eoc/v1/status                    the EOC's own birth: "online" makes every site
                                     republish its state and replay what is unacknowledged
    eoc/v1/ack/<district>/<site_id>  {"seq": N}: the EOC has committed every row up to N

Envelope fields: ``schema`` (SCHEMA_VERSION), ``district``, ``site``, ``session`` (one
per publisher start: the EOC tells reboots apart), ``seq`` (the site's sequence number,
never reused), ``floor`` (the lowest seq still in the outbox when sent: the EOC may
acknowledge past a gap below it, rows that were dropped or already acknowledged),
``historical`` (replayed from the backlog: it never overwrites live state), ``ts``
(when it happened, Unix seconds), ``kind`` and ``body``.

The state's fields, HAVE-like (docs/edxl-have.md), units in the names:
facility_status / facility_reason (Normal, Compromised, Closed: `api.edxl`), mode,
mode_since_ts, power_source ("grid", "vehicles", "none"), energised, life_safety_served
(every life-safety load on; null when one is unknown), endurance_h (the bus's protected
tiers) and endurance_h_by_tier (the bus's projection per tier: hours its energy carries
that tier with the tiers above it; null = no limit), energy_above_reserve_wh,
donors_needed_kwh (energy short of carrying the protected tiers for their target hours
at their present draw), occupancy (people, as the site's operator last recorded them, and
occupancy_ts when; both null when never counted: `resilience.shelter`),
alarms (codes and messages), updated_ts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

SCHEMA_VERSION = 1
EOC_STATUS_TOPIC = "eoc/v1/status"
# what the "changed?" test ignores: it moves every cycle without anything happening
_VOLATILE = ("updated_ts",)


def prefix(district: str, site_id: str) -> str:
    return f"shelter/v1/{district}/{site_id}"


def ack_topic(district: str, site_id: str) -> str:
    return f"eoc/v1/ack/{district}/{site_id}"


def power_source(doc: Mapping[str, Any]) -> str:
    """Where the site bus gets its power now: "grid", "vehicles" or "none"."""
    if doc["mode"] == "grid_connected" and doc["pcc"] == "closed":
        return "grid"
    if doc["energised"]:
        return "vehicles"
    return "none"


def _life_safety_served(doc: Mapping[str, Any]) -> bool | None:
    """Every life-safety load on and the bus energised; None while one is unknown."""
    tier = doc["tiers"]["life_safety"]
    if int(tier["unknown"]) > 0:
        return None
    return bool(doc["energised"]) and int(tier["shed"]) == 0


def _round(value: Any, digits: int) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


def donors_needed_kwh(doc: Mapping[str, Any], targets_h: Mapping[str, float]) -> float:
    """[kWh] energy the bus lacks to carry its protected tiers for their target hours at
    their present draw: what donor cars would have to bring. 0 when it has enough."""
    basis = doc["endurance_basis"]
    hours = max((targets_h.get(tier, 0.0) for tier in basis["tiers"]), default=0.0)
    need_wh = hours * float(basis["draw_w"]) - float(basis["energy_above_reserve_wh"])
    return round(max(0.0, need_wh) / 1000.0, 1)


def state_payload(
    doc: Mapping[str, Any], *, district: str, site_id: str, targets_h: Mapping[str, float]
) -> dict[str, Any]:
    """The retained state from one status document (`api.status.status_document`).
    Figures are rounded to what an EOC reads (0.1 h, 0.1 kWh) so that noise is no change."""
    from resilience.api.edxl import facility_status

    status, why = facility_status(dict(doc))
    bus = next((c for c in doc["circuits"] if c["id"] == "bus"), None)
    policy = bus["policy"] if bus is not None else None
    by_tier = (
        {tier: _round(h, 1) for tier, h in policy["projection_h"].items()}
        if policy is not None
        else None
    )
    return {
        "schema": SCHEMA_VERSION,
        "district": district,
        "site": site_id,
        "name": doc["site"],
        "facility_status": status,
        "facility_reason": why,
        "mode": doc["mode"],
        "mode_since_ts": doc["mode_since_ts"],
        "power_source": power_source(doc),
        "energised": bool(doc["energised"]),
        "life_safety_served": _life_safety_served(doc),
        "endurance_h": _round(doc["endurance_h"], 1),
        "endurance_h_by_tier": by_tier,
        "energy_above_reserve_wh": round(
            float(doc["endurance_basis"]["energy_above_reserve_wh"]), -2
        ),
        "donors_needed_kwh": donors_needed_kwh(doc, targets_h),
        "occupancy": _people(doc.get("headcount")),
        "occupancy_ts": _counted_ts(doc.get("headcount")),
        "alarms": [dict(a) for a in doc["alarms"]],
        "updated_ts": doc["updated_ts"],
    }


def _people(headcount: Mapping[str, Any] | None) -> int | None:
    return None if headcount is None else int(headcount["people"])


def _counted_ts(headcount: Mapping[str, Any] | None) -> float | None:
    return None if headcount is None else float(headcount["recorded_ts"])


def changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether the state says something new (timestamps alone are no change)."""
    if previous is None:
        return True
    return {k: v for k, v in previous.items() if k not in _VOLATILE} != {
        k: v for k, v in new.items() if k not in _VOLATILE
    }


def envelope(
    *,
    district: str,
    site_id: str,
    session: str,
    seq: int,
    floor: int,
    historical: bool,
    ts: float,
    kind: str,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """One outbox row as published (see the module docstring)."""
    return {
        "schema": SCHEMA_VERSION,
        "district": district,
        "site": site_id,
        "session": session,
        "seq": seq,
        "floor": floor,
        "historical": historical,
        "ts": ts,
        "kind": kind,
        "body": dict(body),
    }


def status_payload(
    online: bool,
    *,
    session: str,
    ts: float,
    keepalive_s: float | None = None,
    state_max_interval_s: float | None = None,
) -> dict[str, Any]:
    """Birth and will. The birth carries the figures the EOC judges the site's data by: the
    broker says `offline` within 1.5 x keepalive_s of a lost site, and a state older than
    state_max_interval_s (plus margin) is stale."""
    payload: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "status": "online" if online else "offline",
        "session": session,
        "ts": ts,
    }
    if keepalive_s is not None:
        payload["keepalive_s"] = keepalive_s
    if state_max_interval_s is not None:
        payload["state_max_interval_s"] = state_max_interval_s
    return payload


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str).encode()


def parse_ack(payload: bytes) -> int:
    """The sequence number an acknowledgement covers; ValueError saying why if malformed."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"acknowledgement is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or doc["seq"] < 0:
        raise ValueError("acknowledgement needs an integer 'seq' >= 0")
    if doc.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise ValueError(f"acknowledgement schema {doc.get('schema')!r} is not {SCHEMA_VERSION}")
    return int(doc["seq"])


def covered(acked: int, floor: int, received: set[int]) -> tuple[int, set[int]]:
    """What an EOC may acknowledge: the highest seq up to which it holds every row, given
    what it acknowledged before, the sender's `floor` (rows below it are gone for good)
    and the seqs received above `acked`. Returns (new acked, seqs still above it)."""
    acked = max(acked, floor - 1)
    pending = {seq for seq in received if seq > acked}
    while acked + 1 in pending:
        acked += 1
        pending.discard(acked)
    return acked, pending


# --- commands from the EOC ----------------------------------------------------------------

EOC_COMMANDS: dict[str, tuple[str, ...]] = {
    "planned_island": (),
    "reconnect": (),
    "set_tier": ("load_id", "tier"),
    "ack_alarm": ("alarm_id",),
}
"""What the EOC may ask of a site, with the arguments each needs. Nothing that bypasses a
safety rule: each is decided by the site's own controller (`Controller.submit`, its
interlocks), which may refuse."""
DISTRICT_WIDE = "_all"
"""The last topic level of a command to every site of a district (no site id starts with
'_', so it cannot name a site)."""
MAX_COMMAND_LIFETIME_S = 3600.0
"""A command valid for longer than this is refused: an EOC's order is for now."""


def command_topics(district: str, site_id: str) -> tuple[str, str]:
    """Where a site takes commands: its own topic, and its district's."""
    return f"eoc/v1/cmd/{district}/{site_id}", f"eoc/v1/cmd/{district}/{DISTRICT_WIDE}"


def result_topic(district: str, site_id: str) -> str:
    return f"{prefix(district, site_id)}/result"


class CommandRefused(ValueError):
    """A command refused before the controller sees it; `command_id` when it had one."""

    def __init__(self, command_id: str | None, command: str, reason: str) -> None:
        super().__init__(reason)
        self.command_id = command_id
        self.command = command


def parse_command(payload: bytes, now_ts: float) -> tuple[str, str, str, dict[str, Any]]:
    """(id, operator, command, args) of an EOC command that is well formed, allowed and not
    expired; else `CommandRefused` saying why. Expiry is judged on the site's clock."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandRefused(None, "", f"command is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CommandRefused(None, "", "command is not a JSON object")
    command_id = doc.get("id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= 100:
        raise CommandRefused(None, "", "command needs an 'id' (a string of 1 to 100 characters)")
    name = doc.get("command")
    name = name if isinstance(name, str) else ""
    if doc.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise CommandRefused(
            command_id, name, f"schema {doc.get('schema')!r} is not {SCHEMA_VERSION}"
        )
    operator = doc.get("operator")
    if not isinstance(operator, str) or not operator:
        raise CommandRefused(command_id, name, "command needs the 'operator' who gave it")
    if name not in EOC_COMMANDS:
        allowed = ", ".join(sorted(EOC_COMMANDS))
        raise CommandRefused(
            command_id, name, f"command {name!r} is not one the EOC may give ({allowed})"
        )
    expires = doc.get("expires_ts")
    if (
        isinstance(expires, bool)
        or not isinstance(expires, int | float)
        or not math.isfinite(expires)
    ):
        raise CommandRefused(command_id, name, "command needs 'expires_ts' (Unix seconds)")
    if expires <= now_ts:
        raise CommandRefused(
            command_id, name, f"expired {now_ts - expires:.0f} s ago (expires_ts {expires:.0f})"
        )
    if expires - now_ts > MAX_COMMAND_LIFETIME_S:
        raise CommandRefused(
            command_id,
            name,
            f"expires {expires - now_ts:.0f} s from now: more than {MAX_COMMAND_LIFETIME_S:.0f} s",
        )
    args = doc.get("args", {})
    if not isinstance(args, dict):
        raise CommandRefused(command_id, name, "'args' is not a JSON object")
    missing = [key for key in EOC_COMMANDS[name] if key not in args]
    if missing:
        raise CommandRefused(command_id, name, f"missing argument {', '.join(missing)}")
    return command_id, operator, name, {key: args[key] for key in EOC_COMMANDS[name]}


def result_payload(
    *,
    district: str,
    site_id: str,
    command_id: str | None,
    command: str,
    outcome: str,
    detail: str,
    ts: float,
) -> dict[str, Any]:
    """The site's answer to a command: outcome "accepted", "refused" or "error"."""
    return {
        "schema": SCHEMA_VERSION,
        "district": district,
        "site": site_id,
        "id": command_id,
        "command": command,
        "outcome": outcome,
        "detail": detail,
        "ts": ts,
    }
