"""Plan files: the example validates; bad ones exit 2 with `file: key: reason`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resilience import cli
from resilience.planning.plan_file import PlanError, load_plan

from .conftest import REPO, SMALL_PLAN

DONORS = "[donors]\nchargers = 1\nrate_per_h = 0.5\nenergy_kwh = 30.0\n{}\n\n"


def test_example_plan_is_valid() -> None:
    loaded = load_plan(REPO / "config" / "plans" / "moda.toml")
    assert loaded.plan.vary.chargers == [2, 4, 6, 8, 10, 12]
    assert loaded.site.site.name.startswith("Moda")


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        (("chargers = [1, 2]", "chargers = []"), "vary.chargers", "at least one value"),
        (("chargers = [1, 2]", "chargers = [1, 1]"), "vary.chargers", "given twice"),
        (("chargers = [1, 2]", "chargers = [0]"), "vary.chargers[0]", "greater than or equal to 1"),
        (("grid_forming = [1, 2]", "grid_forming = [5]"), "vary.grid_forming", "more than"),
        (('tier = "life_safety"', 'tier = "lifesafety"'), "targets[0].tier", "lifesafety"),
        (('tier = "life_safety"', 'tier = "comfort"'), "targets[0].tier", "fast model"),
        (("share_pct = 95.0", "share_pct = 120.0"), "targets[0].share_pct", "less than"),
        (("hours = 4\nshare", "hours = 48\nshare"), "targets[0].hours", "beyond plan.hours"),
        (("seed = 3", "seed = 3\nbogus = 1"), "plan.bogus", "unknown key"),
        (("[costs]", "[costs]\ncharger_eur = 1"), "costs.charger_eur", "unknown key"),
        (("pv_kwp = [0.0, 20.0]", "pv_kwp = [-1.0]"), "vary.pv_kwp[0]", "greater than"),
        (("pv_kwp = [0.0, 20.0]", "v2l_outlets = [3]"), "vary.v2l_outlets[0]", "has 2"),
        (("pv_kwp = [0.0, 20.0]", "fleet_hours = [[[8, 6]]]"), "vary.fleet_hours", "start < end"),
        (('name = "small"', 'name = ""'), "plan.name", "at least 1 character"),
        (("[[targets]]", "[[nothing]]"), "nothing", "unknown key"),
        (
            ("[costs]", DONORS.replace("0.5", "0.0").format("") + "[costs]"),
            "donors.rate_per_h",
            "greater than 0",
        ),
        (
            ("[costs]", DONORS.format("energy_spread_kwh = -1.0") + "[costs]"),
            "donors.energy_spread_kwh",
            "greater than or equal to 0",
        ),
        (
            ("[costs]", DONORS.format("capacity_kwh = 50.0") + "[costs]"),
            "donors",
            "more than a 50 kWh car holds above a 50 % reserve (25 kWh)",
        ),
    ],
)
def test_bad_plan_exits_2_naming_file_key_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], key: str, reason: str
) -> None:
    assert edit[0] in SMALL_PLAN
    path = tmp_path / "bad.toml"
    path.write_text(SMALL_PLAN.replace(edit[0], edit[1], 1), encoding="utf-8")
    assert cli.main(["plan", str(path), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith(f"{path}: {key}: ") and reason in line for line in lines), lines
    assert not (tmp_path / "out").exists()  # nothing half-done


def test_bad_site_and_missing_files(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[site]\nname = 'x'\n", encoding="utf-8")
    path = tmp_path / "plan.toml"
    text = SMALL_PLAN.replace(str(REPO / "config" / "site.toml"), str(site))
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as exc:
        load_plan(path)
    assert all(p.key == "plan.site" and str(site) in p.reason for p in exc.value.problems)
    path.write_text(SMALL_PLAN.replace("profile_moda_year.csv", "nope.csv"), encoding="utf-8")
    with pytest.raises(PlanError, match=r"plan\.profile: no such file"):
        load_plan(path)
    with pytest.raises(PlanError, match=r"\(file\)"):
        load_plan(tmp_path / "absent.toml")
    path.write_text("[plan\n", encoding="utf-8")
    with pytest.raises(PlanError, match=r"\(syntax\)"):
        load_plan(path)


def test_without_the_plan_extra_it_says_how_to_install_it(
    small_plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from resilience.planning import commands

    assert commands.missing_packages() == []  # the test venv has the extra
    monkeypatch.setitem(commands.PLAN_MODULES, "no_such_module_for_plan", "dask[distributed]")
    assert cli.main(["plan", str(small_plan), "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "needs dask[distributed]" in err and "pip install 'resilience[plan]'" in err
    assert not (tmp_path / "out").exists()
