"""Scenario files: the built-in ones load; each kind of bad file is refused, naming file,
event and reason; the CLI exits 2 for a bad file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim import drill
from resilience.drills.scenario import ScenarioError, load_scenario, parse_span

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
