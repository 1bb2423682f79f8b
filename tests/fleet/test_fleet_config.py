"""`[fleet]` in the site file: parsed, checked, and every problem names its key and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_config import parses_after, problems_after, set_


def fleet(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    password = tmp_path / "mqtt-password"
    password.write_text("secret\n")
    section: dict[str, Any] = {
        "broker_host": "127.0.0.1",
        "district": "kadikoy",
        "site_id": "school-1",
        "username": "kadikoy.school-1",
        "password_file": str(password),
    }
    section.update(overrides)
    return {k: v for k, v in section.items() if v is not None}


def test_a_site_without_fleet_has_none() -> None:
    assert parses_after().fleet is None


def test_a_fleet_section_parses_with_its_defaults(tmp_path: Path) -> None:
    site = parses_after(set_("fleet", fleet(tmp_path)))
    assert site.fleet is not None
    assert site.fleet.port == 1883 and site.fleet.keepalive_s == 30
    assert site.fleet.topic_prefix == "shelter/v1/kadikoy/school-1"
    tls = parses_after(set_("fleet", fleet(tmp_path, tls_ca=str(tmp_path / "mqtt-password"))))
    assert tls.fleet is not None and tls.fleet.port == 8883


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"site_id": "school/1"}, "fleet.site_id", "should match pattern"),
        ({"district": "#"}, "fleet.district", "should match pattern"),
        ({"password_file": None}, "fleet.password_file", "required with fleet.username"),
        ({"username": None, "password_file": None}, "fleet", "no credentials"),
        ({"password_file": "/nonexistent/pw"}, "fleet.password_file", "no such file"),
        ({"broker_host": "broker.city.example"}, "fleet.broker_host", "in clear"),
        ({"tls_cert": "/nonexistent/c.pem"}, "fleet.tls_key", "required with fleet.tls_cert"),
        (
            {"state_min_interval_s": 30, "state_max_interval_s": 10},
            "fleet.state_min_interval_s",
            "longer",
        ),
        ({"keepalive_s": 1}, "fleet.keepalive_s", "greater than or equal to 5"),
        ({"outbox_max_rows": 0}, "fleet.outbox_max_rows", "greater than or equal to 10"),
        ({"qos": 2}, "fleet.qos", "unknown key"),
    ],
)
def test_fleet_problems_say_where_and_why(
    tmp_path: Path, overrides: dict[str, Any], key: str, words: str
) -> None:
    section = fleet(tmp_path)
    for name, value in overrides.items():
        if value is None:
            section.pop(name, None)
        else:
            section[name] = value
    problems = problems_after(set_("fleet", section))
    assert any(p.key == key and words in p.reason for p in problems), problems


def test_plain_mqtt_off_this_machine_is_an_explicit_choice(tmp_path: Path) -> None:
    site = parses_after(
        set_("fleet", fleet(tmp_path, broker_host="broker.city.example", allow_plain_mqtt=True))
    )
    assert site.fleet is not None and not site.fleet.tls
