"""What the controller counts a silent LocalFrequency station as (`silent_max_charge_w`).

A silent charger may be drawing at its rating on its last command (rule 5), unless its
driver knows better: an OCPP station with its CentralSetpoint and LocalFrequency profiles
in place draws at most what it last accepted to charge (its curve never charges).
"""

from __future__ import annotations

from resilience.config import SiteConfig, cross_check
from resilience.cycle import _vehicle_state
from resilience.devices import SilentDrawBound
from resilience.ocpp import CentralSystem
from resilience.ocpp.driver import OcppStationDriver
from resilience.ocpp.local_frequency import IslandDroop, LocalFrequencyShare
from resilience.overrides import VehicleView
from tests.ocpp.station import ocpp_site

DROOPS = {"charger_1": 1.0, "charger_2": 1.0}


def site(local_frequency: bool = True) -> SiteConfig:
    config = ocpp_site({"lf": {"role": "follower"}})
    devices = {
        name: d.model_copy(update={"droop_hz": DROOPS[name]}) if name in DROOPS else d
        for name, d in config.devices.items()
    }
    station = devices["lf"]
    assert station.ocpp is not None
    ocpp = station.ocpp.model_copy(update={"local_frequency": local_frequency})
    devices["lf"] = station.model_copy(update={"ocpp": ocpp})
    config = config.model_copy(update={"devices": devices})
    assert cross_check(config) == []
    return config


def driver(config: SiteConfig) -> OcppStationDriver:
    return CentralSystem(config).drivers["lf"]


def test_the_central_system_matches_the_formers_droop() -> None:
    lf = driver(site())
    assert lf.island == IslandDroop(50.0, 1.0)
    assert driver(site(local_frequency=False)).island is None
    assert isinstance(lf, SilentDrawBound)


def test_a_silent_station_counts_what_it_last_accepted_to_charge() -> None:
    lf = driver(site())
    assert lf.silent_max_charge_w() is None  # nothing installed yet: its rating
    lf.state.dynamic_installed = True
    lf.local_frequency_share = LocalFrequencyShare(11000.0)
    lf.state.accepted_setpoint_w = 5000.0  # discharging
    assert lf.silent_max_charge_w() == 0.0
    lf.state.accepted_setpoint_w = -3000.0  # charging 3 kW
    assert lf.silent_max_charge_w() == 3000.0
    lf.local_frequency_share = None  # no curve beneath (refused, too near the reserve)
    assert lf.silent_max_charge_w() is None
    other = driver(site(local_frequency=False))
    other.state.dynamic_installed = True
    other.state.accepted_setpoint_w = 5000.0
    assert other.silent_max_charge_w() is None


def test_the_snapshot_counts_a_silent_charger_at_the_bound_or_its_rating() -> None:
    config = site()
    device = config.devices["lf"]
    view = VehicleView(vehicle_id=None, reserve_soc_pct=30.0)
    rated = _vehicle_state("lf", device, None, view, 0.0, 600.0)
    bounded = _vehicle_state("lf", device, None, view, 0.0, 600.0, 0.0)
    assert rated.max_charge_w == 11000.0 and not rated.available
    assert bounded.max_charge_w == 0.0 and not bounded.available
