"""The site's state for emergency services, in EDXL-HAVE 2.0 terms (see docs/edxl-have.md).

A shelter is not a hospital, but emergency operations centres already read
HAVE (Hospital AVailability Exchange) reports, so the shelter reports itself as
one facility: its name, its facility status (Normal / Compromised / Closed),
whether its emergency operations are active, and its capacity to serve: which
load tiers are served, how many hours the protected tiers can still run, and
the power it can supply. Pure: a status document in, XML bytes out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

HAVE_NS = "urn:oasis:names:tc:emergency:edxl:have:2.0"
ET.register_namespace("have", HAVE_NS)

COMPROMISED_MODES = frozenset(
    {"islanded", "resynchronising", "planned_islanding", "islanding", "black_start"}
)


def facility_status(doc: dict[str, Any]) -> tuple[str, str]:
    """(HAVE FacilityStatus, why) for a status document; see docs/edxl-have.md."""
    mode = str(doc["mode"])
    tiers = doc["tiers"]
    served_any = any(int(t["served"]) > 0 for t in tiers.values())
    if not doc["energised"] and not served_any and mode != "grid_connected":
        return "Closed", "site dark: no supply, no load served"
    if mode == "grid_connected":
        return "Normal", "on grid power"
    if mode == "emergency":
        return "Compromised", "emergency: on backup power, life-safety loads only"
    if mode == "starting":
        return "Compromised", "controller starting: reading the field"
    if mode in COMPROMISED_MODES:
        return "Compromised", f"{mode.replace('_', ' ')}: on backup power (parked vehicles)"
    return "Compromised", mode


def _el(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{HAVE_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def edxl_have(doc: dict[str, Any], generated: str) -> bytes:
    """One HospitalStatus report with one Hospital (the shelter), as UTF-8 XML."""
    status, why = facility_status(doc)
    root = ET.Element(f"{{{HAVE_NS}}}HospitalStatus")
    hospital = _el(root, "Hospital")
    organization = _el(hospital, "Organization")
    info = _el(organization, "OrganizationInformation")
    _el(info, "OrganizationName", str(doc["site"]))
    _el(info, "OrganizationType", "Shelter")

    state = _el(hospital, "Status")
    _el(state, "FacilityStatus", status)
    _el(state, "EOCStatus", "Inactive" if doc["mode"] == "grid_connected" else "Active")
    _el(state, "OperatingMode", str(doc["mode"]))
    _el(state, "ModeSince", str(doc["mode_since"]))
    _el(state, "Comment", why)

    capacity = _el(hospital, "ServiceCapacity")
    endurance = doc["endurance_h"]
    _el(capacity, "EnduranceHours", "unbounded" if endurance is None else f"{endurance:.1f}")
    _el(capacity, "SupplyAvailableW", f"{float(doc['supply_w']):.0f}")
    _el(capacity, "LoadServedW", f"{float(doc['load_w']):.0f}")
    _el(capacity, "VehiclesConnected", str(doc["vehicles"]["connected"]))
    # The bus's own, as EnduranceHours (a V2L car feeds only its own circuit).
    _el(
        capacity,
        "EnergyAboveReserveWh",
        str(doc["endurance_basis"]["energy_above_reserve_wh"]),
    )
    for tier, counts in doc["tiers"].items():
        service = _el(capacity, "Service")
        _el(service, "ServiceName", f"power.{tier}")
        served, shed = int(counts["served"]), int(counts["shed"])
        total = served + shed + int(counts["unknown"])
        if served == total and total > 0:
            level = "Served"
        elif served > 0:
            level = "PartlyServed"
        else:
            level = "NotServed"
        _el(service, "ServiceStatus", level)
        _el(service, "LoadsServed", str(served))
        _el(service, "LoadsTotal", str(total))
        _el(service, "PowerServedW", f"{float(counts['served_w']):.0f}")
    alarms = doc["alarms"]
    if alarms:
        comments = _el(hospital, "Alarms")
        for alarm in alarms:
            _el(comments, "Alarm", f"{alarm['code']}: {alarm['message']}")
    _el(hospital, "LastUpdateTime", generated)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
