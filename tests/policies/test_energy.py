"""The endurance policy: the lowest tier a circuit's energy can afford to keep on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience.config import DispatchSection
from resilience.model import LoadState, Tier
from resilience.policies.energy import (
    allowed_tier,
    carried_h,
    energy_needed_wh,
    kept_tier,
    projection_h,
    staircase_h,
    tiers_w,
)

LS, CR, ES, CO = Tier.LIFE_SAFETY, Tier.CRITICAL, Tier.ESSENTIAL, Tier.COMFORT
TARGETS = {LS: 72.0, CR: 48.0, ES: 8.0, CO: 0.0}


def ld(
    load_id: str,
    tier: Tier,
    rated_w: float,
    *,
    on: bool = True,
    power_w: float | None = None,
    supply: str = "bus",
) -> LoadState:
    return LoadState(
        load_id=load_id,
        tier=tier,
        rated_power_w=rated_w,
        supply=supply,
        relay_on=on,
        power_w=(rated_w if on else 0.0) if power_w is None else power_w,
        available=True,
    )


# The tiny site of issue 11: 300 W of life-safety, a 2.5 kW kettle, a 3 kW heater.
TINY = [ld("fridge", LS, 300.0), ld("kettle", ES, 2500.0), ld("heater", CO, 3000.0)]


def test_demand_is_measured_when_on_rated_when_off_and_nothing_when_locked() -> None:
    loads = [ld("a", LS, 1000.0, power_w=400.0), ld("b", CR, 800.0, on=False), ld("c", CO, 50.0)]
    assert tiers_w(loads) == {LS: 400.0, CR: 800.0, ES: 0.0, CO: 50.0}
    assert tiers_w(loads, locked_off={"c"})[CO] == 0.0


def test_projection_per_tier_and_the_tiers_above() -> None:
    hours = projection_h(3000.0, {LS: 300.0, CR: 0.0, ES: 2500.0, CO: 3000.0})
    assert hours[LS] == pytest.approx(10.0)
    assert hours[CR] == pytest.approx(10.0)
    assert hours[ES] == pytest.approx(3000.0 / 2800.0)
    assert hours[CO] == pytest.approx(3000.0 / 5800.0)
    # firm PV offsets the draw; covering it means no limit
    assert projection_h(3000.0, {LS: 300.0, CR: 0, ES: 0, CO: 0}, pv_w=400.0)[LS] == math.inf


def test_energy_needed_is_the_staircase_of_targets() -> None:
    demand = {LS: 100.0, CR: 200.0, ES: 400.0, CO: 800.0}
    assert energy_needed_wh(demand, TARGETS, LS) == pytest.approx(100 * 72)
    assert energy_needed_wh(demand, TARGETS, CR) == pytest.approx(100 * 72 + 200 * 48)
    assert energy_needed_wh(demand, TARGETS, ES) == pytest.approx(100 * 72 + 200 * 48 + 400 * 8)
    # comfort's target is 0 h: it costs nothing beyond what essential needs
    assert energy_needed_wh(demand, TARGETS, CO) == energy_needed_wh(demand, TARGETS, ES)


def test_tiny_site_keeps_life_safety_only() -> None:
    """One car at 35 %, reserve 30 % (40 kWh: 2 kWh above reserve): life-safety alone lasts
    about 7 h; the kettle and the heater must go."""
    cap = allowed_tier(2000.0, TINY, dict.fromkeys(Tier, 72.0), 2.0, None)
    assert cap.tier is LS
    assert cap.short is LS
    assert cap.short_h == pytest.approx(2000.0 / 300.0)
    assert cap.short_target_h == 72.0
    assert (
        cap.reason(CO)
        == "saving energy: with comfort on, life_safety would last 0.3 h, target 72 h"
    )
    assert cap.reason(LS) == ""


def test_sheds_from_the_bottom_as_the_energy_falls() -> None:
    demand_loads = [
        ld("ls", LS, 100.0),
        ld("cr", CR, 200.0),
        ld("es", ES, 400.0),
        ld("co", CO, 800.0),
    ]
    needs = {t: energy_needed_wh(tiers_w(demand_loads), TARGETS, t) for t in Tier}
    previous: Tier | None = None
    seen = []
    for energy in range(30000, 0, -250):
        cap = allowed_tier(float(energy), demand_loads, TARGETS, 2.0, previous)
        previous = cap.tier
        seen.append(cap.tier)
        for tier in Tier:
            if tier <= cap.tier and tier > LS:
                assert energy >= needs[tier]
    assert seen == sorted(seen, reverse=True)  # never back up on a falling energy
    assert seen[0] is CO and seen[-1] is LS


def test_restore_waits_for_the_hysteresis_in_hours() -> None:
    loads = [ld("ls", LS, 100.0), ld("cr", CR, 200.0, on=False)]
    need = energy_needed_wh(tiers_w(loads), TARGETS, CR)
    # just enough: kept if it was on, not restored if it was off
    assert allowed_tier(need, loads, TARGETS, 2.0, CR).tier is CR
    assert allowed_tier(need, loads, TARGETS, 2.0, LS).tier is LS
    # restored once it would last 2 h more: 2 h of 300 W
    assert allowed_tier(need + 599.0, loads, TARGETS, 2.0, LS).tier is LS
    assert allowed_tier(need + 600.0, loads, TARGETS, 2.0, LS).tier is CR


def test_the_top_tier_with_loads_is_always_carried() -> None:
    """A V2L circuit with no life-safety load: its critical load is carried to the end."""
    loads = [ld("light", CR, 500.0, supply="v2l"), ld("urn", CO, 2000.0, supply="v2l")]
    cap = allowed_tier(1000.0, loads, TARGETS, 2.0, None)
    assert cap.tier is CR
    assert cap.short is CR and cap.short_h == pytest.approx(2.0)


def test_clinic_fridge_before_the_urn_on_a_donor() -> None:
    """Issue 11: a 2 kW urn must not run on a donor while the clinic fridge needs it."""
    loads = [ld("fridge", LS, 300.0), ld("light", CR, 500.0), ld("urn", CO, 2000.0)]
    targets = dict.fromkeys(Tier, 72.0)
    # 30 kWh above reserve: fridge 300 W x 72 h = 21.6 kWh; fridge + light 57.6 kWh
    cap = allowed_tier(30000.0, loads, targets, 2.0, None)
    assert cap.tier is LS and cap.short is None
    assert "life_safety would last" in cap.reason(CO)


def test_pv_counts_its_firm_share_in_every_step() -> None:
    loads = [ld("ls", LS, 1000.0), ld("co", CO, 1000.0)]
    targets = dict.fromkeys(Tier, 10.0)
    assert allowed_tier(15000.0, loads, targets, 0.0, None).tier is LS
    assert allowed_tier(15000.0, loads, targets, 0.0, None, pv_w=600.0).tier is CO


def test_carried_h_follows_the_staircase() -> None:
    demand = {LS: 100.0, CR: 100.0, ES: 0.0, CO: 0.0}
    # 48 h at 200 W = 9.6 kWh, then life-safety alone: 2.4 kWh left = 24 h more
    assert carried_h(12000.0, demand, TARGETS, CR) == pytest.approx(72.0)
    assert carried_h(4800.0, demand, TARGETS, CR) == pytest.approx(24.0)
    assert carried_h(0.0, demand, TARGETS, LS) == 0.0
    assert carried_h(10.0, dict.fromkeys(Tier, 0.0), TARGETS, CO) == math.inf


def test_kept_on_load_holds_everything_above_it() -> None:
    assert kept_tier(LS, [ld("urn", CO, 2000.0)]) is CO
    assert kept_tier(ES, [ld("light", CR, 10.0)]) is ES


def test_bad_energy_is_no_energy() -> None:
    cap = allowed_tier(math.nan, TINY, TARGETS, 2.0, None)
    assert cap.tier is LS and cap.energy_wh == 0.0


def test_site_file_targets() -> None:
    cfg = DispatchSection(endurance_target_h=24.0, endurance_targets_h={"comfort": 0.0})  # type: ignore[arg-type]
    assert cfg.tier_targets_h() == {LS: 24.0, CR: 24.0, ES: 24.0, CO: 0.0}
    assert DispatchSection().tier_targets_h() == dict.fromkeys(Tier, 72.0)


loads_st = st.lists(
    st.tuples(st.sampled_from(list(Tier)), st.floats(1.0, 5000.0), st.booleans()),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(
    spec=loads_st,
    energy=st.floats(0.0, 500_000.0),
    pv=st.floats(0.0, 5000.0),
    previous=st.none() | st.sampled_from(list(Tier)),
    hysteresis=st.floats(0.0, 10.0),
)
def test_allowed_tier_secures_every_target_above_it(
    spec: list[tuple[Tier, float, bool]],
    energy: float,
    pv: float,
    previous: Tier | None,
    hysteresis: float,
) -> None:
    loads = [ld(f"l{i}", tier, w, on=on) for i, (tier, w, on) in enumerate(spec)]
    cap = allowed_tier(energy, loads, TARGETS, hysteresis, previous, pv_w=pv)
    demand = tiers_w(loads)
    top = cap.top_tier
    assert top is not None and cap.tier >= top
    if cap.tier > top:
        # every tier kept on leaves the higher tiers their targets
        assert energy >= energy_needed_wh(demand, TARGETS, cap.tier, pv) * (1 - 1e-9)
    if cap.short is not None:
        assert cap.tier == top
        assert cap.short_h < TARGETS[top]


def test_a_zero_hour_tier_goes_before_the_tier_above_it() -> None:
    """Comfort's target is 0 h: it still leaves essential its 8 h, and goes first (with
    `hysteresis_h` of its own draw to spare), not in the same instant as essential."""
    loads = [ld("ls", LS, 100.0), ld("cr", CR, 100.0), ld("es", ES, 100.0), ld("co", CO, 1000.0)]
    need_es = energy_needed_wh(tiers_w(loads), TARGETS, ES)
    assert staircase_h(TARGETS, 2.0) == {LS: 72.0, CR: 48.0, ES: 8.0, CO: 2.0}
    assert allowed_tier(need_es + 1000.0, loads, TARGETS, 2.0, CO).tier is ES
    assert allowed_tier(need_es + 2000.0, loads, TARGETS, 2.0, CO).tier is CO
    # the policy off: every target 0 h stays 0 h
    assert set(staircase_h(dict.fromkeys(Tier, 0.0), 2.0).values()) == {0.0}
    assert allowed_tier(0.0, loads, dict.fromkeys(Tier, 0.0), 2.0, None).tier is CO
