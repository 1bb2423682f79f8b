"""bench/sites.py: the scaled sites the drill-speed and scaling benchmarks run are valid."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from resilience.config import load_site, parse_site
from resilience.model import Tier
from tests.sites import pending_problems, to_toml

ROOT = Path(__file__).resolve().parents[1]


def _bench_sites() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sites", ROOT / "bench" / "sites.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sites = _bench_sites()


def test_twelve_chargers_is_the_large_site() -> None:
    large = ROOT / "config" / "sites" / "large_site.toml"
    assert sites.scaled_site(12) == tomllib.loads(large.read_text(encoding="utf-8"))
    assert load_site(large).devices.keys() == parse_site(sites.scaled_site(12)).devices.keys()


@pytest.mark.parametrize("chargers", [1, 4, 24])
def test_scaled_site_passes_check_config(chargers: int) -> None:
    # through TOML text, as the benchmarks hand it to the simulator and the controller
    config = parse_site(tomllib.loads(to_toml(sites.scaled_site(chargers))))
    assert pending_problems(config) == []
    assert len(config.chargers) == chargers
    assert len(config.loads) == sites.loads_for(chargers)
    assert {load.tier for load in config.loads if load.supply == "bus"} == set(Tier)
    assert len({v.id for v in config.vehicles}) == len(config.vehicles)


def test_no_site_without_a_charger() -> None:
    with pytest.raises(ValueError, match="at least one charger"):
        sites.scaled_site(0)
