"""The plant's P-f droop on grid-formers: the island's frequency falls as they carry more.

Droop 0 (every existing site) must leave the island exactly as before: at the formers'
setpoint, shared equally. A drooping former puts the island at setpoint - droop x P /
rating, and several share in proportion to rating / droop.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.plant import DroopUnit, Plant, droop_shares
from resilience.config import SiteConfig
from resilience.model import ChargerMode, Tier
from tests.firmware_sim.test_plant import (
    CRITICAL_W,
    LIFE_SAFETY_W,
    black_start,
    form,
    kinds,
)

ISLAND_W = LIFE_SAFETY_W + CRITICAL_W  # 10.4 kW after shedding to critical


def drooping(site: SiteConfig, **droops: float) -> Plant:
    devices = {
        name: device.model_copy(update={"droop_hz": droops.get(name, device.droop_hz)})
        for name, device in site.devices.items()
    }
    return Plant(site.model_copy(update={"devices": devices}))


def test_droop_zero_keeps_the_island_at_the_setpoint_whatever_it_carries(
    site_config: SiteConfig,
) -> None:
    plant = drooping(site_config, charger_1=0.0)
    black_start(plant, keep=Tier.LIFE_SAFETY)
    light = plant.bus_frequency_hz
    plant.set_pv_available(0)
    for load in plant.loads.values():
        if load.spec.supply == "bus" and load.spec.tier == Tier.CRITICAL:
            plant.set_relay(load.spec.panel, load.spec.channel, True)
    assert plant.bus_frequency_hz == light == 50.0
    assert plant.charger_power_w("charger_1") == pytest.approx(ISLAND_W)


def test_a_drooping_former_puts_the_island_below_its_setpoint_by_its_load(
    site_config: SiteConfig,
) -> None:
    plant = drooping(site_config, charger_1=1.0)
    black_start(plant)
    assert plant.charger_power_w("charger_1") == pytest.approx(ISLAND_W)
    assert plant.bus_frequency_hz == pytest.approx(50.0 - 1.0 * ISLAND_W / 11000.0)
    # a follower takes 4 kW off it: the frequency rises by what the droop says
    plant.set_charger_setpoints("charger_3", power_w=4000)
    plant.set_charger_mode("charger_3", ChargerMode.FOLLOW)
    plant.step(plant.timing.follower_reconnect_s)
    assert plant.charger_power_w("charger_1") == pytest.approx(ISLAND_W - 4000)
    assert plant.bus_frequency_hz == pytest.approx(50.0 - (ISLAND_W - 4000) / 11000.0)
    # the phase moves at the drooped frequency, not the setpoint
    phase = plant.bus_phase_deg
    plant.step(0.1)
    moved = (plant.bus_phase_deg - phase) % 360.0
    assert moved == pytest.approx((360.0 * plant.bus_frequency_hz * 0.1) % 360.0)
    assert kinds(plant) == []


def test_two_drooping_formers_share_in_proportion_to_rating_over_droop(
    site_config: SiteConfig,
) -> None:
    plant = drooping(site_config, charger_1=1.0, charger_2=0.5)
    black_start(plant)
    form(plant, "charger_2")
    p1, p2 = plant.charger_power_w("charger_1"), plant.charger_power_w("charger_2")
    assert p1 + p2 == pytest.approx(ISLAND_W)
    assert p2 == pytest.approx(2 * p1)  # half the droop: twice the share
    f = plant.bus_frequency_hz
    assert f == pytest.approx(50.0 - 1.0 * p1 / 11000.0)
    assert f == pytest.approx(50.0 - 0.5 * p2 / 11000.0)
    assert kinds(plant) == []


def test_a_raised_setpoint_holds_a_loaded_drooping_island_at_the_target(
    site_config: SiteConfig,
) -> None:
    """What resynchronisation does (policies.sync.droop_setpoint_hz)."""
    from resilience.policies.sync import droop_setpoint_hz

    plant = drooping(site_config, charger_1=1.0)
    black_start(plant)
    target = 50.1
    setpoint = droop_setpoint_hz(target, 1.0, plant.charger_power_w("charger_1"), 11000.0)
    plant.set_charger_setpoints("charger_1", frequency_hz=setpoint)
    assert plant.bus_frequency_hz == pytest.approx(target)


def test_a_drooping_former_is_still_overloaded_beyond_its_short_term_limit(
    site_config: SiteConfig,
) -> None:
    plant = drooping(site_config, charger_1=1.0)
    plant.set_pv_available(0)
    plant.grid_loss()
    from tests.firmware_sim.test_plant import open_breaker

    open_breaker(plant)
    form(plant)  # every load on: far beyond 11 kW
    assert not plant.bus_live
    assert kinds(plant) == ["island_collapse"]


units = st.builds(
    DroopUnit,
    setpoint_hz=st.floats(49.0, 51.0),
    droop_hz=st.one_of(st.just(0.0), st.floats(0.05, 3.0)),
    rating_w=st.floats(1000.0, 50_000.0),
)


@given(st.lists(units, min_size=1, max_size=4), st.floats(-50_000.0, 100_000.0))
def test_droop_shares_meet_the_need_on_one_frequency(
    formers: list[DroopUnit], need_w: float
) -> None:
    f, shares = droop_shares(formers, need_w)
    assert sum(shares) == pytest.approx(need_w, rel=1e-9, abs=1e-6)
    for unit, share in zip(formers, shares, strict=True):
        if unit.droop_hz > 0:  # every drooping former sits on its own line at f
            assert unit.setpoint_hz - unit.droop_hz * share / unit.rating_w == pytest.approx(
                f, abs=1e-6
            )
    iso = [u for u in formers if u.droop_hz == 0]
    if iso:
        assert f == pytest.approx(sum(u.setpoint_hz for u in iso) / len(iso))
    else:
        more_f, _ = droop_shares(formers, need_w + 1000.0)
        assert more_f < f  # more load, lower frequency
