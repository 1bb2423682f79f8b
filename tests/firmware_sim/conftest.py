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


@pytest.fixture
def plant_without_interlock(site_config: SiteConfig) -> Plant:
    """The reference site with no PCC interlock on its grid-formers: a former may run in
    parallel with the grid (and back-feed it), which the referee must catch."""
    devices = {
        name: device.model_copy(update={"pcc_interlock": False})
        for name, device in site_config.devices.items()
    }
    return Plant(site_config.model_copy(update={"devices": devices}))
