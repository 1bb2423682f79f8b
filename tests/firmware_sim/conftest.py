"""Fixtures for the simulated firmware: the reference site file and plants built from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.plant import Plant, PlantInit
from resilience.config import SiteConfig, load_site

SITE_FILE = Path(__file__).resolve().parents[2] / "config" / "site.toml"


@pytest.fixture(scope="session")
def site_config() -> SiteConfig:
    return load_site(SITE_FILE)


@pytest.fixture
def make_plant(site_config: SiteConfig) -> Callable[..., Plant]:
    def make(**init: object) -> Plant:
        return Plant(site_config, PlantInit(**init))  # type: ignore[arg-type]

    return make


@pytest.fixture
def plant(site_config: SiteConfig) -> Plant:
    return Plant(site_config)
