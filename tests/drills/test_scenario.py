"""Scenario files: the built-in ones load; each kind of bad file is refused, naming file,
event and reason; the CLI exits 2 for a bad file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware_sim import drill
from resilience.config import load_site
from resilience.drills.scenario import (
    DEFAULT_MAX_UNSERVED_KWH,
    Criteria,
    GridBlips,
    LoadedScenario,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_span,
)

REPO = Path(__file__).resolve().parents[2]
DRILLS = REPO / "config" / "drills"
BUILT_IN = sorted(DRILLS.glob("*.toml"))

GOOD = """
[scenario]
name = "t"
site = "{site}"
duration = "10m"

[[events]]
at = "1m"
kind = "grid_loss"

[[events]]
at = "2m"
kind = "sag"
pu = 0.8
duration_s = 0.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text.replace("{site}", str(REPO / "config" / "site.toml")), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(p) for p in caught.value.problems]


def test_built_in_scenarios_load() -> None:
    names = {p.stem for p in BUILT_IN}
    assert {
        "earthquake_72h",
        "storm_cap_alert",
        "grid_flicker",
        "shortfall_emergency",
        "breaker_fails_to_open",
        "former_lost",
    } <= names
    for path in BUILT_IN:
        loaded = load_scenario(path)
        assert loaded.scenario.events


def test_good_file(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, GOOD))
    assert loaded.duration_s == 600.0
    assert [e.kind for e in loaded.scenario.events] == ["grid_loss", "sag"]


def test_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_scenario(path).duration_s == 600.0


@pytest.mark.parametrize(
    ("text", "span"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1d", 86400), (12, 12.0), ("250ms", 0.25)],
)
def test_spans(text: str | int, span: float) -> None:
    assert parse_span(text) == span


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('kind = "sag"', 'kind = "earthquake"'),
            "s.toml: events[1] (earthquake at 2m): unknown event kind",
        ),
        (("pu = 0.8", "pu = 3.0"), "s.toml: events[1] (sag at 2m).pu: Input should be less"),
        (("pu = 0.8\n", ""), "s.toml: events[1] (sag at 2m).pu: required key is missing"),
        (
            ('at = "2m"', 'at = "2 fortnights"'),
            "s.toml: events[1] (sag at 2 fortnights).at: '2 fortnights' is not a duration",
        ),
        (
            ('at = "2m"', 'at = "20m"'),
            "s.toml: events[1] (sag at 20m).at: 20 min is after the end of the drill",
        ),
        (
            ("duration_s = 0.5", "duration_s = 0.5\nvoltage = 1"),
            "s.toml: events[1] (sag at 2m).voltage: unknown key",
        ),
        (
            ('duration = "10m"', 'duration = "10m"\nsite_file = "x"'),
            "s.toml: scenario.site_file: unknown key",
        ),
        (('name = "t"', 'name = ""'), "s.toml: scenario.name: String should have at least"),
    ],
)
def test_bad_files_name_file_event_and_reason(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    found = problems(write(tmp_path, text))
    assert any(p.endswith(expected) or expected in p for p in found), found


def test_cross_checks_against_the_site(tmp_path: Path) -> None:
    text = (
        GOOD
        + """
[[events]]
at = "3m"
kind = "device_silent"
device = "toaster"

[[events]]
at = "4m"
kind = "vehicle_arrives"
vehicle = "stranger"
connector = "charger_9"
soc_pct = 50

[[events]]
at = "5m"
kind = "cap_alert"
file = "missing.xml"
"""
    )
    found = problems(write(tmp_path, text))
    assert any(
        "events[2] (device_silent at 3m).device: unknown device 'toaster'" in p for p in found
    ), found
    assert any(
        "events[3] (vehicle_arrives at 4m).connector: 'charger_9' is not a charger" in p
        for p in found
    ), found
    assert any("events[3] (vehicle_arrives at 4m).capacity_wh" in p for p in found), found
    assert any("events[4] (cap_alert at 5m).file:" in p and "missing.xml" in p for p in found), (
        found
    )


def test_bad_cap_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.xml").write_text("<alert>", encoding="utf-8")
    text = GOOD + '\n[[events]]\nat = "3m"\nkind = "cap_alert"\nfile = "bad.xml"\n'
    found = problems(write(tmp_path, text))
    assert any(
        "events[2] (cap_alert at 3m).file:" in p and "not well-formed XML" in p for p in found
    ), found


def test_bad_site_and_syntax(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD.replace("{site}", "nowhere.toml")))
    assert any("scenario.site:" in p and "nowhere.toml" in p for p in found), found
    found = problems(write(tmp_path, "[scenario\n"))
    assert found[0].startswith(f"{tmp_path / 's.toml'}: (syntax):")


def test_runner_exits_2_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("pu = 0.8", "pu = -1"))
    assert drill.main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "s.toml: events[1] (sag at 2m).pu:" in err


def test_cli_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('kind = "grid_loss"', 'kind = "meteor"'))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resilience.cli",
            "drill",
            str(path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "events[0] (meteor at 1m): unknown event kind" in done.stderr


# ---------------------------------------------------------------- connector occupancy
# In the reference site every connector has its car: fleet_1..4 on charger_1..4,
# donor_v2l_1/2 on v2l_1/2. A car can only arrive at a free connector.

OCCUPANCY = """
[scenario]
name = "occupancy"
site = "{site}"
duration = "10m"
{initial}
"""


def arrives(at: str, vehicle: str, connector: str, extra: str = "") -> str:
    return (
        f'\n[[events]]\nat = "{at}"\nkind = "vehicle_arrives"\nvehicle = "{vehicle}"\n'
        f'connector = "{connector}"\nsoc_pct = 60\n{extra}'
    )


def leaves(at: str, connector: str, kind: str = "vehicle_leaves") -> str:
    return f'\n[[events]]\nat = "{at}"\nkind = "{kind}"\nconnector = "{connector}"\n'


def occupancy(*events: str, initial: str = "") -> str:
    return OCCUPANCY.replace("{initial}", initial) + "".join(events)


ABSENT_3 = '[initial]\nabsent = ["fleet_3"]\n'
DONOR_3 = 'leaving = "1h"\n'  # fleet_3 with a leaving time: the operator registers it

REFUSED = [
    pytest.param(
        occupancy(arrives("1m", "fleet_1", "charger_1")),
        "events[0] (vehicle_arrives at 1m).connector: charger_1 is not free at 60 s: it holds"
        " 'fleet_1' (the site file's car, parked from the start); free it first with a"
        " vehicle_leaves or unplug event, or list 'fleet_1' in initial.absent",
        id="site car arrives where it is parked",
    ),
    pytest.param(
        occupancy(
            arrives("1m", "guest", "charger_2", "capacity_wh = 40000\ntell_controller = false\n")
        ),
        "events[0] (vehicle_arrives at 1m).connector: charger_2 is not free at 60 s: it holds"
        " 'fleet_2'",
        id="unregistered guest at an occupied charger",
    ),
    pytest.param(
        occupancy(
            arrives("1m", "fleet_3", "charger_3"),
            arrives("2m", "fleet_3", "charger_3"),
            initial=ABSENT_3,
        ),
        "events[1] (vehicle_arrives at 2m).connector: charger_3 is not free at 2 min: it holds"
        " 'fleet_3' (plugged in by events[0] (vehicle_arrives at 1m)); free it first with a"
        " vehicle_leaves or unplug event",
        id="two arrivals without a departure between",
    ),
    pytest.param(
        occupancy(
            leaves("1m", "charger_1", "unplug"),
            arrives("2m", "fleet_1", "charger_1"),
            arrives("3m", "fleet_1", "charger_1"),
        ),
        "events[2] (vehicle_arrives at 3m).connector: charger_1 is not free at 3 min",
        id="freed once, filled twice",
    ),
    pytest.param(
        occupancy(
            arrives("1m", "fleet_3", "charger_3", DONOR_3),
            leaves("5m", "charger_3"),
            arrives("5m5s", "fleet_3", "charger_3"),
            initial=ABSENT_3,
        ),
        "events[2] (vehicle_arrives at 5m5s).connector: charger_3 is not free at 5.083 min:"
        " it holds 'fleet_3' (plugged in by events[0] (vehicle_arrives at 1m); released by"
        " events[1] (vehicle_leaves at 5m), its owner unplugs it 10 s later, at 5.167 min);"
        " arrive after 5.167 min",
        id="arrival while a released donor is still being unplugged",
    ),
    pytest.param(
        occupancy(
            arrives("1m", "fleet_3", "charger_3", DONOR_3),
            leaves("5m", "charger_3"),
            arrives("5m10s", "fleet_3", "charger_3"),
            initial=ABSENT_3,
        ),
        "events[2] (vehicle_arrives at 5m10s).connector: charger_3 is not free at 5.167 min",
        id="arrival at the very time the donor is unplugged",
    ),
    pytest.param(
        occupancy(
            leaves("1m", "charger_3", "unplug"),
            arrives("2m", "fleet_1", "charger_3", "tell_controller = false\n"),
        ),
        "events[1] (vehicle_arrives at 2m).vehicle: 'fleet_1' is still at charger_1 at 2 min"
        " (the site file's car, parked from the start); one car cannot be at two connectors",
        id="one car at two connectors",
    ),
    pytest.param(
        occupancy(initial='[initial]\nabsent = ["fleet_3", "fleet_3"]\n'),
        "initial.absent: vehicle 'fleet_3' is named 2 times",
        id="absent twice",
    ),
]

ACCEPTED = [
    pytest.param(
        occupancy(leaves("1m", "charger_1", "unplug"), arrives("2m", "fleet_1", "charger_1")),
        id="unplugged, then back",
    ),
    pytest.param(
        occupancy(leaves("1m", "charger_1"), arrives("1m", "fleet_1", "charger_1")),
        id="leaves and comes back at one time, in that order",
    ),
    pytest.param(
        occupancy(arrives("1m", "fleet_3", "charger_3"), initial=ABSENT_3),
        id="absent car arrives",
    ),
    pytest.param(
        occupancy(
            arrives("1m", "fleet_3", "charger_3", DONOR_3),
            leaves("5m", "charger_3"),
            arrives("5m11s", "fleet_3", "charger_3"),
            initial=ABSENT_3,
        ),
        id="registered donor leaves, unplugged 10 s later, comes back",
    ),
    pytest.param(
        occupancy(
            leaves("1m", "v2l_1", "unplug"),
            leaves("1m", "v2l_2", "unplug"),
            arrives("2m", "donor_v2l_2", "v2l_1", "tell_controller = false\n"),
            arrives("3m", "donor_v2l_1", "v2l_2", "tell_controller = false\n"),
        ),
        id="two cars swap outlets",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED)
def test_arrival_at_an_occupied_connector_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path / 's.toml'}: {expected}"), found


@pytest.mark.parametrize("text", ACCEPTED)
def test_arrival_at_a_freed_connector_loads_and_runs(tmp_path: Path, text: str) -> None:
    """What the check accepts, the drill plays through (the plant refuses a car at an
    occupied connector with a ValueError, so this would raise)."""
    path = write(tmp_path, text)
    load_scenario(path)
    code = drill.main([str(path), "--out", str(tmp_path / "out"), "--quiet", "--duration", "6m"])
    assert code in (0, 1)


def test_cli_refuses_an_arrival_at_an_occupied_connector(tmp_path: Path) -> None:
    path = write(tmp_path, occupancy(arrives("1m", "fleet_1", "charger_1")))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resilience.cli",
            "drill",
            str(path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"{path}: events[0] (vehicle_arrives at 1m).connector: charger_1 is not free at 60 s:"
        " it holds 'fleet_1' (the site file's car, parked from the start); free it first"
        " with a vehicle_leaves or unplug event, or list 'fleet_1' in initial.absent"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "expected"), REFUSED)
def test_what_the_check_refuses_would_fail_mid_drill(
    tmp_path: Path, text: str, expected: str
) -> None:
    """The check is no stricter than the drill: run past it, each refused timeline makes
    the plant raise (this is what the check saves a drill from)."""
    data = tomllib.loads(write(tmp_path, text).read_text(encoding="utf-8"))
    site_path = REPO / "config" / "site.toml"
    loaded = LoadedScenario(
        tmp_path / "s.toml", Scenario.model_validate(data), site_path, load_site(site_path), {}
    )
    with pytest.raises(ValueError, match=r"already holds a vehicle|is already at|holds no vehicle"):
        asyncio.run(drill.run_max(loaded, tmp_path / "out", duration_s=360.0, progress=False))


# ---------------------------------------------------------------- issue 11: drills that can say it
FEATURES = """
[scenario]
name = "features"
site = "{site}"
duration = "2h"

[initial]
absent = ["donor_v2l_1"]
"""


def blips(**fields: object) -> str:
    body = "".join(f"{k} = {json_value(v)}\n" for k, v in fields.items())
    return f'\n[[events]]\nat = "10m"\nkind = "grid_blips"\n{body}'


def json_value(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            blips(period="5m", down="5m", count=3),
            "events[0] (grid_blips at 10m).down: 5 min is not shorter than the period (5 min):"
            " the grid would never come back",
        ),
        (blips(period="5m", down="1m"), "events[0] (grid_blips at 10m): grid_blips needs exactly"),
        (
            blips(period="5m", down="1m", count=2, until="1h"),
            "events[0] (grid_blips at 10m): grid_blips needs exactly one of count or until",
        ),
        (
            blips(period="5m", down="1m", until="5m"),
            "events[0] (grid_blips at 10m).until: 5 min is not after at",
        ),
        (
            blips(period="5m", down="1m", until="3h"),
            "events[0] (grid_blips at 10m).until: 3 h is after the end of the drill (2 h)",
        ),
        (
            blips(period="1h", down="1m", count=3),
            "events[0] (grid_blips at 10m).count: the last blip starts at 2.167 h, after the end"
            " of the drill (2 h)",
        ),
        (
            blips(period="-5m", down="1m", count=3),
            "events[0] (grid_blips at 10m).period: '-5m' is not a duration",
        ),
        (
            blips(period="5m", down="1m", count=0),
            "events[0] (grid_blips at 10m).count: Input should be greater than or equal to 1",
        ),
        (
            "[initial.reserve_soc_pct]\nfleet_9 = 40\n",
            "initial.reserve_soc_pct.fleet_9: unknown vehicle 'fleet_9' in the site",
        ),
        (
            "[initial.reserve_soc_pct]\nfleet_1 = 140\n",
            "initial.reserve_soc_pct.fleet_1: Input should be less than or equal to 100",
        ),
        (
            arrives("1m", "34 ABC 12", "v2l_1", "capacity_wh = 500\n"),
            "events[0] (vehicle_arrives at 1m).capacity_wh: 500 Wh is outside 1000..300000 Wh,"
            " what the controller accepts for a registered car",
        ),
        (
            arrives("1m", "x" * 65, "v2l_1", "capacity_wh = 50000\n"),
            "events[0] (vehicle_arrives at 1m).vehicle: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxx': a registered car's id is 1 to 64 characters",
        ),
        (
            arrives("1m", "34 ABC 12", "v2l_1", "capacity_wh = 50000\nmax_discharge_w = 0\n"),
            "events[0] (vehicle_arrives at 1m).max_discharge_w: Input should be greater than 0",
        ),
        (
            '[criteria]\nno_pcc_close_before = "3h"\n',
            "criteria.no_pcc_close_before: after the end of the drill",
        ),
        (
            '[[criteria.endurance]]\ntier = "lifesafety"\nat_least = "1h"\n',
            "criteria.endurance[0].tier: ",
        ),
        (
            '[[criteria.endurance]]\ntier = "life_safety"\nat_least = "1h"\ncircuit = "v2l_9"\n',
            "criteria.endurance[0].circuit: 'v2l_9' is not a circuit of the site"
            " (bus, v2l_1, v2l_2)",
        ),
        (
            '[[criteria.endurance]]\ntier = "life_safety"\nat_least = "1h"\ncircuit = "v2l_2"\n',
            "criteria.endurance[0].tier: no life_safety load on v2l_2: nothing to measure",
        ),
        (
            '[[criteria.endurance]]\ntier = "critical"\nat_least = "3h"\n',
            "criteria.endurance[0].at_least: 3 h is longer than the time it is counted in (2 h):"
            " it can never pass",
        ),
        (
            '[[criteria.endurance]]\ntier = "critical"\nat_least = "1h"\nbetween = ["1h", "30m"]\n',
            "criteria.endurance[0].between: 30 min is not after 60 min",
        ),
        (
            '[[criteria.endurance]]\ntier = "critical"\nat_least = "1h"\nbetween = ["0s", "3h"]\n',
            "criteria.endurance[0].between: 3 h is after the end of the drill (2 h)",
        ),
        (
            '[[criteria.endurance]]\ntier = "critical"\nat_least = "1h"\nbetween = ["0s"]\n',
            "criteria.endurance[0].between: ['0s'] is not a window: give two times,"
            ' e.g. ["1h", "2h"]',
        ),
        (
            '[[criteria.endurance]]\ntier = "critical"\nhours = 3\n',
            "criteria.endurance[0].hours: unknown key",
        ),
        (
            '[[criteria.relay]]\nload = "toaster"\nopens = true\n',
            "criteria.relay[0].load: unknown load 'toaster' in the site",
        ),
        (
            '[[criteria.relay]]\nload = "hvac"\ntier = "comfort"\nopens = true\n',
            "criteria.relay[0]: give load or tier, not both",
        ),
        (
            '[[criteria.relay]]\nload = "hvac"\n',
            "criteria.relay[0]: nothing to check: give opens, closes or max_operations",
        ),
        (
            '[[criteria.relay]]\nload = "hvac"\nmax_operations = -1\n',
            "criteria.relay[0].max_operations: Input should be greater than or equal to 0",
        ),
    ],
)
def test_new_keys_are_validated_with_file_key_and_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    if text.startswith("[initial"):
        body = FEATURES.replace('[initial]\nabsent = ["donor_v2l_1"]\n', "") + text
    elif text.startswith("[criteria") or text.startswith("[[criteria"):
        body = FEATURES + "\n" + text
    else:
        body = FEATURES + text
    found = problems(write(tmp_path, body))
    assert any(p.startswith(f"{tmp_path / 's.toml'}: {expected}") for p in found), found


def test_blips_by_count_or_until() -> None:
    by_count = Scenario.model_validate(
        {
            "scenario": {"name": "b", "site": "x", "duration": "1h"},
            "events": [
                {"at": "1m", "kind": "grid_blips", "period": "10m", "down": "30s", "count": 3},
                {"at": "1m", "kind": "grid_blips", "period": "10m", "down": "30s", "until": "31m"},
                {"at": "1m", "kind": "grid_blips", "period": "10m", "down": "30s", "until": "32m"},
            ],
        }
    )
    first, second, third = by_count.events
    assert isinstance(first, GridBlips) and isinstance(second, GridBlips)
    assert isinstance(third, GridBlips)
    assert first.starts() == [60.0, 660.0, 1260.0]
    assert second.starts() == [60.0, 660.0, 1260.0]  # blips that start before until
    assert third.starts() == [60.0, 660.0, 1260.0, 1860.0]


def test_scenario_reserves_override_the_site_file(tmp_path: Path) -> None:
    text = FEATURES + "\n[initial.reserve_soc_pct]\nfleet_1 = 55.0\ndonor_v2l_2 = 70\n"
    text = text.replace('[initial]\nabsent = ["donor_v2l_1"]\n', "")
    loaded = load_scenario(write(tmp_path, text))
    reserves = {v.id: v.reserve_soc_pct for v in loaded.site.vehicles}
    assert reserves["fleet_1"] == 55.0 and reserves["donor_v2l_2"] == 70.0
    assert reserves["fleet_2"] == 30.0  # the site file's


def test_a_donor_of_any_id_may_arrive_at_any_free_connector(tmp_path: Path) -> None:
    """The home outlet of the site file's donor_v2l_1, and a fleet car's home charger once
    the fleet car has gone: the operator registers the car under its own name."""
    text = (
        FEATURES.replace('absent = ["donor_v2l_1"]', 'absent = ["donor_v2l_1", "fleet_3"]')
        + arrives("1m", "34 ABC 12", "v2l_1", "capacity_wh = 58000\nreserve_soc_pct = 50\n")
        + arrives("2m", "06 XYZ 9", "charger_3", "capacity_wh = 64000\nmax_discharge_w = 7000\n")
        + leaves("1h", "v2l_1")
        + leaves("1h", "charger_3")
    )
    loaded = load_scenario(write(tmp_path, text))
    assert [e.kind for e in loaded.scenario.events] == [
        "vehicle_arrives",
        "vehicle_arrives",
        "vehicle_leaves",
        "vehicle_leaves",
    ]


def test_the_unserved_default_is_explicit() -> None:
    assert Criteria().unserved_limits() == ({"life_safety": 0.01}, True)
    assert DEFAULT_MAX_UNSERVED_KWH == {"life_safety": 0.01}
    explicit = Criteria.model_validate({"max_unserved_kwh": {"critical": 0.5}})
    assert explicit.unserved_limits() == ({"critical": 0.5}, False)
    assert Criteria.model_validate({"max_unserved_kwh": {}}).unserved_limits() == ({}, False)


STATION_EVENTS = """
[[events]]
at = "1m"
kind = "station_fault"
device = "charger_1"
fault = "link_cut"

[[events]]
at = "2m"
kind = "station_fault"
device = "ocpp_1"
fault = "slow"
delay_s = 1.0

[[events]]
at = "3m"
kind = "station_fault"
device = "ocpp_1"
fault = "rejecting"
delay_s = 5.0

[[events]]
at = "4m"
kind = "station_fault"
device = "ocpp_1"
fault = "slow"
"""


def test_station_events_are_checked_against_the_site(tmp_path: Path) -> None:
    found = problems(write(tmp_path, GOOD + STATION_EVENTS))
    expected = [
        "events[2] (station_fault at 1m).device: 'charger_1' is a bidirectional_charger, not"
        " an OCPP station",
        "events[3] (station_fault at 2m).delay_s: 1 s is not slower than [ocpp]"
        " call_timeout_s (2 s)",
        "events[4] (station_fault at 3m).delay_s: only a slow station takes delay_s, not"
        " rejecting",
        "events[5] (station_fault at 4m).delay_s: a slow station needs delay_s",
    ]
    for text in expected:
        assert any(text in p for p in found), (text, found)
    bad = '[[events]]\nat = "5m"\nkind = "station_fault"\ndevice = "ocpp_2"\nfault = "meltdown"\n'
    found = problems(write(tmp_path, GOOD + bad))
    assert any("events[2]" in p and "fault" in p and "link_cut" in p for p in found), found
