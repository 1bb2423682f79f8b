"""The sweep's pure functions: derived sites, survival per combination, the frontier."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from resilience.config import parse_site
from resilience.drills.survival import Profile, load_profile
from resilience.model import Tier
from resilience.planning.plan_file import load_plan
from resilience.planning.sweep import (
    Combination,
    combinations,
    derive_site,
    donor_draws,
    evaluate,
    frontier,
    runs,
    sample_starts,
    site_kwp,
)


def test_combinations_skip_more_formers_than_chargers(small_plan: Path) -> None:
    loaded = load_plan(small_plan)
    combos = combinations(loaded.plan, loaded.site)
    # chargers 1, 2 x formers 1, 2 (not 2 of 1) x PV 0, 20; outlets: the site's 2
    assert len(combos) == 6
    assert all(c.grid_forming <= c.chargers and c.v2l_outlets == 2 for c in combos)


def test_derived_site_is_what_a_user_would_write(small_plan: Path) -> None:
    loaded = load_plan(small_plan)
    combo = Combination(5, 2, 1, 0.0, 45.0, ((0.0, 8.0), (18.0, 24.0)))
    before = copy.deepcopy(loaded.site_doc)
    site = parse_site(derive_site(loaded.site_doc, combo))
    assert loaded.site_doc == before  # the input document is not changed
    chargers = site.devices_of("bidirectional_charger")
    assert sorted(chargers) == [f"charger_{i}" for i in range(1, 6)]
    assert [n for n, d in chargers.items() if d.can_form] == ["charger_1", "charger_2"]
    assert sorted(site.devices_of("v2l_outlet")) == ["v2l_1"]
    assert all(ld.supply in ("bus", "v2l_1") for ld in site.loads)
    assert [v.id for v in site.vehicles if v.outlet] == ["donor_v2l_1"]
    assert not site.pv_inverters
    on_chargers = [v for v in site.vehicles if v.charger]
    assert len(on_chargers) == 5 + 2  # the site's two OCPP stations' cars stay
    assert all(v.reserve_soc_pct == 45.0 for v in on_chargers)
    assert all(v.available_hours == [(0.0, 8.0), (18.0, 24.0)] for v in on_chargers)


def tiny_profile(hours: int = 48) -> Profile:
    ls = np.full(hours, 2000.0)
    return Profile(
        hour=np.arange(hours),
        life_safety_w=ls,
        critical_w=np.full(hours, 3000.0),
        essential_w=np.full(hours, 1000.0),
        comfort_w=np.zeros(hours),
        pv_w=np.where(np.arange(hours) % 24 == 12, 5000.0, 0.0),
    )


def test_more_chargers_survive_longer_and_cost_more(small_plan: Path) -> None:
    loaded = load_plan(small_plan)
    profile = tiny_profile()
    kwp = site_kwp(loaded.site)
    few = evaluate(
        loaded.plan, loaded.site_doc, profile, kwp, Combination(1, 1, 2, 0.0, 95.0, None)
    )
    many = evaluate(
        loaded.plan, loaded.site_doc, profile, kwp, Combination(2, 1, 2, 0.0, 95.0, None)
    )
    # a 95 % reserve on cars that start at 80 %: nothing to give, the first hour is lost
    assert few["valid"] and few["survival_pct"]["life_safety"][0] == 0.0
    assert not few["meets"]
    low = evaluate(
        loaded.plan, loaded.site_doc, profile, kwp, Combination(1, 1, 2, 0.0, 30.0, None)
    )
    more = evaluate(
        loaded.plan, loaded.site_doc, profile, kwp, Combination(2, 2, 2, 0.0, 30.0, None)
    )
    assert many["cost"] > few["cost"]
    for a, b in zip(low["survival_pct"]["critical"], more["survival_pct"]["critical"], strict=True):
        assert b >= a
    assert more["cost"] == 2 * 10000.0 + 2 * 5000.0


def result(label: str, cost: float, share: float, meets: bool = True) -> dict[str, Any]:
    return {
        "label": label,
        "cost": cost,
        "meets": meets,
        "combination": {"chargers": 1, "grid_forming": 1, "v2l_outlets": 0, "pv_kwp": cost},
        "targets": [{"achieved_pct": share}],
    }


def test_frontier_is_cheapest_then_only_better() -> None:
    rs = [
        result("d", 40.0, 99.0),
        result("a", 10.0, 96.0),
        result("x", 5.0, 99.9, meets=False),
        result("b", 20.0, 95.5),  # dearer and no better: off the frontier
        result("c", 30.0, 98.0),
    ]
    assert [r["label"] for r in frontier(rs)] == ["a", "c", "d"]
    assert frontier([result("x", 5.0, 99.9, meets=False)]) == []


def test_same_seed_same_answer(small_plan: Path) -> None:
    loaded = load_plan(small_plan)
    profile = load_profile(loaded.profile_path)
    kwp = site_kwp(loaded.site)
    combos = combinations(loaded.plan, loaded.site)[:2]
    first = [evaluate(loaded.plan, loaded.site_doc, profile, kwp, c) for c in combos]
    again = [evaluate(loaded.plan, loaded.site_doc, profile, kwp, c) for c in combos]
    assert first == again
    assert sample_starts(3, 8760, 50) == sample_starts(3, 8760, 50)
    assert sample_starts(3, 8760, 50) != sample_starts(4, 8760, 50)
    assert len(set(sample_starts(3, 10, 50))) == 10


def test_endurance_targets_varied(small_plan: Path) -> None:
    text = small_plan.read_text(encoding="utf-8").replace(
        "pv_kwp = [0.0, 20.0]",
        "pv_kwp = [0.0]\nendurance_targets_h = ["
        "{ life_safety = 24.0, critical = 8.0 }, { critical = 100.0 }]",
    )
    small_plan.write_text(text, encoding="utf-8")
    loaded = load_plan(small_plan)
    combos = [c for c in combinations(loaded.plan, loaded.site) if c.chargers == 2]
    assert [c.endurance_targets_h for c in combos[:2]] == [
        (("life_safety", 24.0), ("critical", 8.0)),
        (("critical", 100.0),),
    ]
    profile = load_profile(loaded.profile_path)
    kwp = site_kwp(loaded.site)
    keeps, invalid = (evaluate(loaded.plan, loaded.site_doc, profile, kwp, c) for c in combos[:2])
    site = parse_site(derive_site(loaded.site_doc, combos[0]))
    assert site.dispatch.tier_targets_h()[Tier.CRITICAL] == 8.0
    assert site.dispatch.tier_targets_h()[Tier.ESSENTIAL] == 8.0  # the site's, kept
    # less energy kept back for life-safety's and critical's own hours: critical stays on
    # where the site's 72 h and 24 h shed it
    site_own = evaluate(
        loaded.plan, loaded.site_doc, profile, kwp, replace(combos[0], endurance_targets_h=None)
    )
    assert keeps["valid"]
    assert sum(keeps["survival_pct"]["critical"]) > sum(site_own["survival_pct"]["critical"])
    # a lower tier's target above a higher one's is not a valid site: said, not hidden
    assert not invalid["valid"] and not invalid["meets"]
    assert any("endurance_targets_h" in p for p in invalid["problems"]), invalid["problems"]
    assert Combination.from_dict(combos[1].as_dict()) == combos[1]


def test_an_outlet_adds_its_circuit_to_what_a_tier_set_must_carry(small_plan: Path) -> None:
    """A V2L outlet brings its loads and its donor car: the fast model runs its circuit on
    that car (as the controller does), and a tier set is carried only while the bus and
    every outlet circuit with loads of it carry it. So outlets change survival: a donor
    with little above its reserve loses the clinic fridge (life-safety, on V2L 1) long
    before the bus runs out."""
    loaded = load_plan(small_plan)
    profile = load_profile(loaded.profile_path)
    kwp = site_kwp(loaded.site)
    doc = copy.deepcopy(loaded.site_doc)
    for car in doc["vehicles"]:
        if car.get("outlet") == "v2l_1":
            car["reserve_soc_pct"] = 79.0  # starts at 80 %: 0.4 kWh above its floor
    none, one = (
        evaluate(loaded.plan, doc, profile, kwp, Combination(2, 1, n, 0.0, 30.0, None))
        for n in (0, 1)
    )
    assert none["survival_pct"]["life_safety"][3] == 100.0  # the bus alone: 4 h everywhere
    assert one["survival_pct"]["life_safety"][3] < 50.0  # the fridge's donor gives out first
    site = parse_site(derive_site(doc, Combination(2, 1, 1, 0.0, 30.0, None)))
    carried, cause = runs(site, profile, 0.0, 4, loaded.plan.plan.start_soc_pct)
    lost = carried[0] < 4
    assert lost.any() and set(cause[0][lost].tolist()) <= {1, 3, 4}
    # with the site's own donor (35 % reserve: 35 kWh to give) the outlet costs nothing
    kept = evaluate(
        loaded.plan, loaded.site_doc, profile, kwp, Combination(2, 1, 1, 0.0, 30.0, None)
    )
    assert kept["survival_pct"]["life_safety"] == none["survival_pct"]["life_safety"]


DONORS = """
[donors]
chargers = 2
rate_per_h = 0.5
energy_kwh = 30.0
energy_spread_kwh = 8.0
capacity_kwh = 77.4
reserve_soc_pct = 40.0
"""


def test_donor_draws_are_seeded_per_start(small_plan: Path) -> None:
    small_plan.write_text(small_plan.read_text(encoding="utf-8") + DONORS, encoding="utf-8")
    donors = load_plan(small_plan).plan.donors
    assert donors is not None
    arrive, energy = donor_draws(donors, 3, 500, 48)
    again, same = donor_draws(donors, 3, 200, 48)  # fewer starts: the same first 200
    assert (arrive[:, :200] == again).all() and (energy[:, :200] == same).all()
    other, _ = donor_draws(donors, 4, 500, 48)
    assert (other != arrive).any()
    came = arrive < 48
    assert came.any() and (energy[came] > 0).all() and (energy[~came] == 0).all()
    assert energy.max() <= 77.4 * 0.6 * 1000.0  # never more than the car holds
    # the first charger's donor is the first to arrive; 0.5 an hour: most starts see one
    assert (arrive[0] <= arrive[1]).all() and came[0].mean() > 0.9


def test_donors_raise_survival(small_plan: Path) -> None:
    text = small_plan.read_text(encoding="utf-8").replace("hours = 4\n", "hours = 48\n", 1)
    text = text.replace("hours = 4\nshare", "hours = 48\nshare")
    small_plan.write_text(text, encoding="utf-8")
    without = load_plan(small_plan)
    small_plan.write_text(text + DONORS, encoding="utf-8")
    loaded = load_plan(small_plan)
    profile = load_profile(loaded.profile_path)
    kwp = site_kwp(loaded.site)
    combo = Combination(1, 1, 0, 0.0, 30.0, None)
    alone = evaluate(without.plan, without.site_doc, profile, kwp, combo)
    helped = evaluate(loaded.plan, loaded.site_doc, profile, kwp, combo)
    # life-safety for 48 h on one charger's car and the two OCPP stations' cars: the
    # donors' energy carries it after many more of the year's starts
    a, b = alone["survival_pct"]["life_safety"], helped["survival_pct"]["life_safety"]
    assert all(y >= x for x, y in zip(a, b, strict=True)) and b[-1] > a[-1] + 20.0, (a, b)
    assert helped["cost"] == alone["cost"] + 2 * 10000.0  # the two donor chargers
    site = parse_site(derive_site(loaded.site_doc, combo, 2))
    assert sorted(n for n in site.devices if n.startswith("donor_charger")) == [
        "donor_charger_1",
        "donor_charger_2",
    ]
    assert not any(v.charger and v.charger.startswith("donor") for v in site.vehicles)
    again = evaluate(loaded.plan, loaded.site_doc, profile, kwp, combo)
    assert again == helped  # the same seed, the same answer
