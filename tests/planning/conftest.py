"""Small plans written next to copies of nothing: they name the repository's site and profile."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "config" / "site.toml"
PROFILE = REPO / "config" / "profile_moda_year.csv"

SMALL_PLAN = f"""
[plan]
name = "small"
site = "{SITE}"
profile = "{PROFILE}"
hours = 4
seed = 3
drills_per_combination = 2

[vary]
chargers = [1, 2]
grid_forming = [1, 2]
pv_kwp = [0.0, 20.0]

[[targets]]
tier = "life_safety"
hours = 4
share_pct = 95.0

[costs]
charger = 10000.0
grid_forming_extra = 5000.0
pv_per_kwp = 800.0
"""


@pytest.fixture
def small_plan(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_PLAN, encoding="utf-8")
    return path
