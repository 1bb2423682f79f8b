"""resilience.cap and policies.storm: parsing CAP 1.2 and deciding a storm watch."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from resilience.cap import CapError, load_cap, parse_cap
from resilience.policies.storm import PRE_ISLAND_LEAD_S, storm_watch

ALERTS = Path(__file__).resolve().parents[2] / "config" / "drills" / "alerts"
DATA = Path(__file__).resolve().parent / "data"
NOW = datetime.fromisoformat("2025-01-15T06:10:00+03:00").timestamp()
ONSET = datetime.fromisoformat("2025-01-15T16:00:00+03:00").timestamp()


def alert_xml(
    status: str = "Actual",
    severity: str = "Severe",
    msg_type: str = "Alert",
    event: str = "Winter storm",
    extra: str = "",
) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>T-1</identifier><sender>test@example.invalid</sender>
  <sent>2025-01-15T06:10:00+03:00</sent><status>{status}</status>
  <msgType>{msg_type}</msgType><scope>Public</scope>
  <info><category>Met</category><event>{event}</event><urgency>Expected</urgency>
    <severity>{severity}</severity><certainty>Likely</certainty>
    <onset>2025-01-15T16:00:00+03:00</onset><expires>2025-01-16T12:00:00+03:00</expires>
    <area><areaDesc>Kadıköy</areaDesc></area>{extra}</info>
</alert>"""


def test_parses_the_shipped_exercise_alert() -> None:
    alert = load_cap(ALERTS / "winter_storm_exercise.xml")
    assert alert.status == "Exercise"
    assert alert.msg_type == "Alert"
    info = alert.infos[0]
    assert (info.event, info.urgency, info.severity, info.certainty) == (
        "Winter storm",
        "Expected",
        "Severe",
        "Likely",
    )
    assert info.onset is not None and info.onset.timestamp() == ONSET
    assert info.areas == ("İstanbul, Kadıköy",)


def test_exercise_counts_only_in_a_drill() -> None:
    alert = load_cap(ALERTS / "winter_storm_exercise.xml")
    assert not storm_watch(alert, NOW, exercise=False).active
    watch = storm_watch(alert, NOW, exercise=True)
    assert watch.active and watch.charge_to_full
    assert watch.island_at_wall == ONSET - PRE_ISLAND_LEAD_S


def test_actual_severe_storm_starts_a_storm_watch() -> None:
    watch = storm_watch(load_cap(ALERTS / "winter_storm_actual.xml"), NOW)
    assert watch.active
    assert watch.onset_wall == ONSET


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"severity": "Moderate"}, "below Severe"),
        ({"status": "Test"}, "status Test"),
        ({"event": "Earthquake aftershock advisory", "extra": ""}, ""),
        ({"msg_type": "Cancel"}, "cancelled"),
    ],
)
def test_alerts_not_acted_on(kwargs: dict[str, str], why: str) -> None:
    xml = alert_xml(**kwargs)
    if "Earthquake" in xml:
        xml = xml.replace("<category>Met</category>", "<category>Geo</category>")
    watch = storm_watch(parse_cap(xml), NOW, exercise=True)
    assert not watch.active
    assert why in watch.reason


def test_expired_alert_is_not_acted_on() -> None:
    later = datetime.fromisoformat("2025-01-17T00:00:00+03:00").timestamp()
    assert not storm_watch(parse_cap(alert_xml()), later).active


def test_alert_close_to_onset_islands_now() -> None:
    soon = ONSET - 600
    watch = storm_watch(parse_cap(alert_xml()), soon)
    assert watch.island_at_wall == soon


def test_bad_xml_is_a_clear_error() -> None:
    with pytest.raises(CapError) as caught:
        parse_cap("<alert><unclosed></alert>", "storm.xml")
    assert str(caught.value).startswith("storm.xml: (xml): not well-formed XML")


def test_bad_value_names_the_file_and_element() -> None:
    with pytest.raises(CapError) as caught:
        load_cap(DATA / "bad_alert.xml")
    message = str(caught.value)
    assert "bad_alert.xml: info[0].severity: 'Terrible' is not a CAP severity" in message


def test_wrong_namespace_and_entities_are_refused() -> None:
    with pytest.raises(CapError, match="expected <alert> in namespace"):
        parse_cap('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"/>', "old.xml")
    with pytest.raises(CapError, match="DTDs and entity declarations"):
        parse_cap('<!DOCTYPE x [<!ENTITY a "b">]><alert/>', "bomb.xml")


def test_missing_required_element() -> None:
    with pytest.raises(CapError, match=r"x.xml: status: required element is missing"):
        parse_cap(alert_xml().replace("<status>Actual</status>", ""), "x.xml")
