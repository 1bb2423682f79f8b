"""CAP 1.2 alerts (OASIS Common Alerting Protocol): parse the XML into frozen records.

Owns reading an alert file such as a national weather service's storm warning:
the fields the controller acts on (status, msgType, and per info block the
event, urgency, severity, certainty, onset, expires and area descriptions),
validated against the values CAP 1.2 allows. Parsing uses the standard
library's `xml.etree`; a document with a DTD or entity declarations is refused
(CAP needs neither, and entity expansion is how XML bombs work).

Every problem raises `CapError`, whose message names the source (file) and the
element: ``storm.xml: info[0].severity: 'Terrible' is not a CAP severity (...)``.

Times are timezone-aware `datetime`s (CAP requires an offset); `.timestamp()`
gives Unix seconds, the unit of the controller's wall clock.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = [
    "CAP_NS",
    "CapAlert",
    "CapError",
    "CapInfo",
    "load_cap",
    "parse_cap",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = "{" + CAP_NS + "}"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

# CAP 1.2 dateTime: "2002-05-24T16:49:00-07:00", offset mandatory, no "Z" allowed by the
# standard, though we accept it (some senders use it).
_CAP_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")


class CapError(ValueError):
    """An alert that cannot be used; the message names the source, the element and why."""

    def __init__(self, source: str, where: str, reason: str) -> None:
        self.source = source
        self.where = where
        self.reason = reason
        super().__init__(f"{source}: {where}: {reason}")


@dataclass(frozen=True)
class CapInfo:
    """One <info> block: what is happening, how bad, how sure, when and where."""

    event: str
    urgency: str
    severity: str
    certainty: str
    categories: tuple[str, ...] = ()
    headline: str = ""
    onset: datetime | None = None
    expires: datetime | None = None
    areas: tuple[str, ...] = ()
    language: str = "en-US"


@dataclass(frozen=True)
class CapAlert:
    """A whole alert message."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    infos: tuple[CapInfo, ...]
    references: str = ""


def _text(element: ET.Element, name: str) -> str | None:
    child = element.find(_Q + name)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _required(element: ET.Element, name: str, source: str, where: str) -> str:
    value = _text(element, name)
    if not value:
        raise CapError(source, f"{where}{name}", "required element is missing or empty")
    return value


def _one_of(value: str, allowed: tuple[str, ...], source: str, where: str, what: str) -> str:
    if value not in allowed:
        raise CapError(
            source, where, f"{value!r} is not a CAP {what} (expected one of: {', '.join(allowed)})"
        )
    return value


def _time(value: str | None, source: str, where: str) -> datetime | None:
    if value is None:
        return None
    if not _CAP_TIME.match(value):
        raise CapError(
            source, where, f"{value!r} is not a CAP time (like 2025-01-15T18:00:00+03:00)"
        )
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_cap(text: str | bytes, source: str = "<alert>") -> CapAlert:
    """Parse one CAP 1.2 alert; raises CapError naming `source`, the element and the reason."""
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    if "<!DOCTYPE" in raw or "<!ENTITY" in raw:
        raise CapError(source, "(document)", "DTDs and entity declarations are not accepted")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CapError(source, "(xml)", f"not well-formed XML: {exc}") from None
    if root.tag != _Q + "alert":
        raise CapError(
            source,
            "(root)",
            f"root element is {root.tag!r}, expected <alert> in namespace {CAP_NS}",
        )
    sent = _time(_required(root, "sent", source, ""), source, "sent")
    assert sent is not None
    status = _one_of(_required(root, "status", source, ""), STATUSES, source, "status", "status")
    msg_type = _one_of(
        _required(root, "msgType", source, ""), MSG_TYPES, source, "msgType", "msgType"
    )
    infos = []
    for i, info in enumerate(root.findall(_Q + "info")):
        where = f"info[{i}]."
        areas = tuple(
            desc
            for area in info.findall(_Q + "area")
            if (desc := _text(area, "areaDesc")) is not None
        )
        infos.append(
            CapInfo(
                event=_required(info, "event", source, where),
                urgency=_one_of(
                    _required(info, "urgency", source, where),
                    URGENCIES,
                    source,
                    where + "urgency",
                    "urgency",
                ),
                severity=_one_of(
                    _required(info, "severity", source, where),
                    SEVERITIES,
                    source,
                    where + "severity",
                    "severity",
                ),
                certainty=_one_of(
                    _required(info, "certainty", source, where),
                    CERTAINTIES,
                    source,
                    where + "certainty",
                    "certainty",
                ),
                categories=tuple(
                    (c.text or "").strip() for c in info.findall(_Q + "category") if c.text
                ),
                headline=_text(info, "headline") or "",
                onset=_time(_text(info, "onset"), source, where + "onset"),
                expires=_time(_text(info, "expires"), source, where + "expires"),
                areas=areas,
                language=_text(info, "language") or "en-US",
            )
        )
    if not infos and msg_type in ("Alert", "Update"):
        raise CapError(source, "info", f"an {msg_type} needs at least one <info> block")
    return CapAlert(
        identifier=_required(root, "identifier", source, ""),
        sender=_required(root, "sender", source, ""),
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=_required(root, "scope", source, ""),
        infos=tuple(infos),
        references=_text(root, "references") or "",
    )


def load_cap(path: str | Path) -> CapAlert:
    """Read and parse an alert file; CapError names the file."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CapError(source, "(file)", exc.strerror or str(exc)) from None
    return parse_cap(data, source)
