"""check-config: read timeouts a real device of its family can meet (docs/registers.md,
"Device response times"), and the timing of shared endpoints and RS-485 lines.

Each case starts from the reference site file, changes one thing and checks that
`parse_site` names the right key and says why, with the family's figure.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from resilience.config import (
    ConfigError,
    Device,
    SiteConfig,
    parse_site,
)
from resilience.device_families import FAMILIES

SITE_FILE = Path(__file__).resolve().parent.parent / "config" / "site.toml"
with SITE_FILE.open("rb") as _f:
    REFERENCE: dict[str, Any] = tomllib.load(_f)

# a device of each polled family in the reference site
OF_FAMILY = {
    "sunspec_meter": "grid_meter",
    "pcc_breaker": "pcc_breaker",
    "load_panel": "panel_main",
    "bidirectional_charger": "charger_3",
    "v2l_outlet": "v2l_1",
    "sunspec_inverter": "pv",
}


def site() -> dict[str, Any]:
    return copy.deepcopy(REFERENCE)


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        parse_site(data, "site.toml")
    except ConfigError as exc:
        return [(p.key, p.reason) for p in exc.problems]
    return []


def parses(data: dict[str, Any]) -> SiteConfig:
    return parse_site(data, "site.toml")


@pytest.mark.parametrize(("family", "name"), sorted(OF_FAMILY.items()))
def test_a_timeout_shorter_than_the_family_can_meet_is_refused(family: str, name: str) -> None:
    least = FAMILIES[family].least_timeout_s
    data = site()
    data["devices"][name]["timeout_s"] = round(least - 0.001, 3)
    found = problems(data)
    key = f"devices.{name}.timeout_s"
    assert [k for k, _ in found] == [key], found
    reason = found[0][1]
    assert f"shorter than a {family} can answer in" in reason
    assert f"least timeout {least:g} s" in reason
    assert "docs/registers.md" in reason
    data["devices"][name]["timeout_s"] = least
    assert parses(data).devices[name].timeout_s == least


def test_the_reference_site_meets_every_family() -> None:
    config = parses(site())
    for name, device in config.devices.items():
        if device.driver != "ocpp":
            assert device.timeout_s >= FAMILIES[device.driver].least_timeout_s, name


def test_on_a_serial_line_the_frames_come_on_top_of_the_family_figure() -> None:
    panel = {
        "driver": "load_panel",
        "transport": "rtu",
        "serial_port": "/dev/ttyUSB0",
        "baudrate": 9600,
        "unit_id": 2,
    }
    family_s = FAMILIES["load_panel"].least_timeout_s
    device = Device.model_validate({**panel, "timeout_s": 1.0})
    frames_s = device.least_timeout_s - family_s
    assert 0.1 < frames_s < 0.13  # 8 + 105 bytes of 11 bits at 9600 baud
    data = site()
    data["site"]["cycle_period_s"] = 0.5
    data["devices"]["panel_v2l"] = {**panel, "channels": 8, "timeout_s": family_s}
    found = problems(data)
    assert [k for k, _ in found] == ["devices.panel_v2l.timeout_s"], found
    assert "plus the frames at 9600 baud on /dev/ttyUSB0" in found[0][1]


def test_a_device_without_a_timeout_gets_the_least_its_family_can_meet() -> None:
    assert Device.model_validate({"driver": "sunspec_inverter"}).timeout_s == 1.0
    assert Device.model_validate({"driver": "pcc_breaker"}).timeout_s == 0.01
    rtu = Device.model_validate(
        {"driver": "load_panel", "transport": "rtu", "serial_port": "/dev/x", "baudrate": 19200}
    )
    assert rtu.timeout_s == pytest.approx(rtu.least_timeout_s, abs=0.001)
    assert rtu.timeout_s >= rtu.least_timeout_s
