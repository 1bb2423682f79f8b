"""Site-file checks for devices on serial lines: Modbus RTU and line-protocol devices."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from resilience.config import CYCLE_READ_REGISTERS, ConfigError, ConfigProblem, Device, parse_site
from resilience.device_families import FAMILIES

SITE_FILE = Path(__file__).resolve().parents[1] / "config" / "site.toml"
BASE: dict[str, Any] = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))


def rtu(unit_id: int, serial_port: str = "/dev/ttyUSB0", **extra: Any) -> dict[str, Any]:
    """A device on an RS-485 line, its timeout left to its family's least (a None removes
    the reference site's own)."""
    return {
        "transport": "rtu",
        "serial_port": serial_port,
        "unit_id": unit_id,
        "baudrate": 115200,
        "timeout_s": None,
        **extra,
    }


def site_with(cycle_period_s: float = 0.1, **devices: dict[str, Any]) -> dict[str, Any]:
    """The reference site with some device entries changed (a field set to None is removed)."""
    data = copy.deepcopy(BASE)
    data["site"]["cycle_period_s"] = cycle_period_s
    # a slow cycle slips the island slowly: resynchronisation needs one sweep's time
    data["sync"]["timeout_s"] = 300.0
    for name, changes in devices.items():
        entry = data["devices"][name]
        entry.pop("port", None)
        for key, value in changes.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
    return data


def problems(data: dict[str, Any]) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_site(data, "site.toml")
    return caught.value.problems


def test_tcp_and_rtu_devices_mix_in_one_site() -> None:
    config = parse_site(
        site_with(charger_3=rtu(1), charger_4=rtu(2), panel_v2l=rtu(3)), "site.toml"
    )
    assert config.devices["charger_3"].transport == "rtu"
    assert config.devices["charger_3"].endpoint == "/dev/ttyUSB0"
    assert config.devices["charger_3"].parity == "E"  # Modbus RTU's default, 8E1
    assert config.devices["grid_meter"].transport == "tcp"
    assert config.devices["grid_meter"].endpoint == "127.0.0.1:15020"


def test_line_protocol_meter_defaults_to_a_serial_transport_8n1() -> None:
    config = parse_site(
        site_with(v2l_1={"driver": "v2l_serial", "serial_port": "/dev/ttyV2L", "timeout_s": None}),
        "site.toml",
    )
    device = config.devices["v2l_1"]
    assert (device.transport, device.parity, device.stopbits) == ("serial", "N", 1)
    assert "v2l_1" in config.outlets  # loads and vehicles may use it as an outlet


@pytest.mark.parametrize(
    ("devices", "key", "words"),
    [
        ({"charger_3": {"transport": "rtu"}}, "devices.charger_3.serial_port", "required key"),
        (
            {"charger_3": rtu(1), "charger_4": rtu(1)},
            "devices.charger_4.unit_id",
            "duplicate unit id 1 on serial port /dev/ttyUSB0 (also used by devices.charger_3)",
        ),
        (
            {"charger_3": rtu(1, baudrate=9600, timeout_s=0.05)},
            "devices.charger_3.timeout_s",
            "shorter than a bidirectional_charger can answer in: at least 0.0696 s (the family's"
            " least timeout 0.018 s, its slowest healthy reply 0.014 s plus the frames at 9600"
            " baud on /dev/ttyUSB0",
        ),
        (
            {"charger_3": rtu(1), "charger_4": rtu(2, baudrate=57600)},
            "devices.charger_4.baudrate",
            "57600 on serial port /dev/ttyUSB0, where devices.charger_3 has 115200",
        ),
        (
            {"charger_3": rtu(1), "charger_4": rtu(2, parity="N")},
            "devices.charger_4.parity",
            "every device on one line uses the same",
        ),
        ({"charger_3": rtu(1, baudrate=14400)}, "devices.charger_3.baudrate", "not a serial baud"),
        (
            {"charger_3": {"serial_port": "/dev/ttyUSB0", "port": 15033}},
            "devices.charger_3.serial_port",
            'only for transport "rtu" or "serial"',
        ),
        (
            {"charger_3": rtu(1, port=15033)},
            "devices.charger_3.port",
            'not used by transport "rtu"',
        ),
        (
            {"v2l_1": {"driver": "v2l_serial", "transport": "rtu", "serial_port": "/dev/x"}},
            "devices.v2l_1.transport",
            'line protocol: transport "serial"',
        ),
        (
            {"charger_3": {"transport": "serial", "serial_port": "/dev/x", "timeout_s": None}},
            "devices.charger_3.transport",
            'speaks Modbus: transport "tcp" or "rtu"',
        ),
        (
            {
                "v2l_1": {"driver": "v2l_serial", "serial_port": "/dev/x", "timeout_s": None},
                "v2l_2": {"driver": "v2l_serial", "serial_port": "/dev/x", "timeout_s": None},
            },
            "devices.v2l_2.serial_port",
            "needs a serial port of its own",
        ),
        (
            {"charger_3": rtu(1), "v2l_1": {"driver": "v2l_serial", "serial_port": "/dev/ttyUSB0"}},
            "devices.v2l_1.transport",
            "one line, one protocol",
        ),
    ],
)
def test_serial_problems_name_the_key(devices: dict[str, Any], key: str, words: str) -> None:
    found = problems(site_with(**devices))
    assert key in [p.key for p in found], found
    reasons = [p.reason for p in found if p.key == key]
    assert any(words in reason for reason in reasons), reasons


def test_a_line_too_busy_for_its_schedule_is_refused() -> None:
    # the two grid-formers are read every cycle in an island, the followers once a second:
    # at 9600 baud the formers alone keep the line busy most of a 0.1 s cycle
    slow = {"baudrate": 9600}
    data = site_with(
        charger_1=rtu(1, **slow),
        charger_2=rtu(2, **slow),
        charger_3=rtu(3, **slow),
        charger_4=rtu(4, **slow),
    )
    found = problems(data)
    assert [p.key for p in found] == ["devices.charger_1.baudrate"]
    chargers = [Device.model_validate(data["devices"][f"charger_{i}"]) for i in (1, 2, 3, 4)]
    typical = FAMILIES["bidirectional_charger"].typical_s
    read_s = chargers[0].exchange_time_s(
        CYCLE_READ_REGISTERS["bidirectional_charger"], with_gap=True, turnaround_s=typical
    )
    busy = 2 * read_s / 0.1 + 2 * read_s / 1.0
    assert f"would be busy {busy:.0%} of the time reading its 4 devices" in found[0].reason
    assert "charger_1, charger_2 every cycle (0.1 s) in an island" in found[0].reason
    assert "charger_3 every 1 s, charger_4 every 1 s" in found[0].reason
    # the followers read less often, or a longer cycle: it fits
    data["site"]["cycle_period_s"] = 0.2
    parse_site(data, "site.toml")


def test_a_line_that_carries_its_schedule_at_a_faster_baud_rate_is_fine() -> None:
    parse_site(
        site_with(
            charger_1=rtu(1), charger_2=rtu(2), charger_3=rtu(3), charger_4=rtu(4), panel_v2l=rtu(5)
        ),
        "site.toml",
    )


def test_the_timeout_check_uses_the_driver_s_largest_reply() -> None:
    # the PV inverter reads 102 registers at once: 217 bytes, 20.7 ms at 115200 8E1, on top
    # of its family's 1 s
    found = problems(site_with(cycle_period_s=1.0, pv=rtu(1, timeout_s=1.02)))
    assert [p.key for p in found] == ["devices.pv.timeout_s"]
    assert "at least 1.02 s (the family's least timeout 1 s" in found[0].reason
    assert "plus the frames at 115200 baud on /dev/ttyUSB0" in found[0].reason
    parse_site(site_with(cycle_period_s=1.0, pv=rtu(1, timeout_s=1.021)), "site.toml")
