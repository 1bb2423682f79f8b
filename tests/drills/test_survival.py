"""Survival analysis on tiny synthetic profiles with hand-computed answers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from resilience import cli
from resilience.config import load_site
from resilience.drills.survival import (
    Fleet,
    ProfileError,
    availability,
    load_profile,
    survival,
)

REPO = Path(__file__).resolve().parents[2]


def fleet(
    capacity_wh: float, floor_wh: float, limit_w: float, present: list[bool], can_form: bool = True
) -> Fleet:
    return Fleet(
        ("car",),
        np.array([capacity_wh]),
        np.array([floor_wh]),
        np.array([limit_w]),
        np.array([can_form]),
        np.array([present]),
    )


def test_hand_computed_single_car() -> None:
    # 4 hours; load 3 kW every hour; PV 5 kW in hour 2 only (net -2 kW: charges the car).
    # One 10 kWh car, floor 0, starts full, limit 11 kW. Energy [kWh] hour by hour:
    #   start 0: hours 0 1 2 3 0 1 : 10 -> 7 4 6 3 0 | hour 1 needs 3, has 0: dies in hour 6
    #   start 1: hours 1 2 3 0 1 2 : 10 -> 7 9 6 3 0 | at its floor: no grid-former left for
    #                                hour 6 (PV alone cannot hold the bus): dies in hour 6
    #   start 2: hours 2 3 0 1 2 3 : 10 (full, PV curtailed) 7 4 1 3 0: survives 6 h
    #   start 3: hours 3 0 1 2 3 0 : 10 -> 7 4 1 3 0 | hour 0 needs 3, has 0: dies in hour 6
    load = np.array([3000.0, 3000.0, 3000.0, 3000.0])
    pv = np.array([0.0, 0.0, 5000.0, 0.0])
    car = fleet(10_000.0, 0.0, 11_000.0, [True] * 4)
    shares = survival(load, pv, car, 6, start_soc_pct=100.0)
    assert shares.tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 0.25]


def test_power_limit_and_missing_former() -> None:
    load = np.array([5000.0, 1000.0])
    pv = np.zeros(2)
    small = fleet(100_000.0, 0.0, 4000.0, [True, True])
    # hour 0 needs 5 kW from a 4 kW car: every start that meets hour 0 in its first hour dies
    assert survival(load, pv, small, 1, 50.0).tolist() == [0.5]
    follower = fleet(100_000.0, 0.0, 11_000.0, [True, True], can_form=False)
    assert survival(load, pv, follower, 1, 50.0).tolist() == [0.0]


def test_reserve_and_absence() -> None:
    load = np.array([1000.0] * 4)
    pv = np.zeros(4)
    # 10 kWh car with a 7 kWh floor at 100 %: 3 kWh usable; present only in hours 0-1
    car = fleet(10_000.0, 7000.0, 11_000.0, [True, True, False, False])
    shares = survival(load, pv, car, 2, 100.0)
    # start 0: hours 0,1 ok; start 1: hour 1 ok, hour 2 no car; starts 2, 3: no car at first
    assert shares.tolist() == [0.5, 0.25]


def test_availability_mask() -> None:
    site = load_site(REPO / "config" / "site.toml")
    fleet_4 = next(v for v in site.vehicles if v.id == "fleet_4")
    present = availability(fleet_4, 48, first_weekday=0)
    assert present[:8].all() and not present[8:18].any() and present[18:32].all()
    weekend_only = fleet_4.model_copy(
        update={"available_hours": [(0.0, 24.0)], "available_weekdays": ["sat", "sun"]}
    )
    week = availability(weekend_only, 24 * 7, first_weekday=0)
    assert not week[: 24 * 5].any() and week[24 * 5 :].all()


def test_bad_profile_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "hour,life_safety_w,critical_w,essential_w,comfort_w,pv_w\n0,1,1,1,1,0\n1,1,x,1,1,0\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError, match=r"p.csv: line 3: critical_w: 'x' is not a number"):
        load_profile(path)
    path.write_text("hour,life_safety_w\n0,1\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="missing column"):
        load_profile(path)


def test_cli_on_the_sample_year(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "survival",
            "--config",
            str(REPO / "config" / "site.toml"),
            "--load-profile",
            str(REPO / "config" / "profile_moda_year.csv"),
            "--hours",
            "72",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["starts"] == 8760
    life = result["survival_pct"]["life_safety"]
    crit = result["survival_pct"]["critical"]
    assert len(life) == 72
    assert all(a >= b for a, b in itertools.pairwise(life))  # never increases
    assert all(c <= s for c, s in zip(crit, life, strict=True))  # more load, less survival
    page = (tmp_path / "survival.html").read_text(encoding="utf-8")
    assert "<svg" in page and "http://" not in page and "https://" not in page
