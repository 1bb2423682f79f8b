"""The mode machine's load-plan memo (`SiteModes._plan`, `_plan_holds`) never changes a plan.

A circuit whose plan holds is planned once and the plan reused while the same load tuple
and limits come back (issue 14: the drill's steady island). The claim pinned here: on
generated circuits (tiers, relays, availability, operators' lock-outs, the mode's tier
cap, switching times, restore delays and minimum off times), whenever the memo keeps a
plan, `plan_loads` worked out afresh at any later time gives the same plan, to the
reasons worded. And the island's restore shortcut (`SiteModes._balance`: no restore plan
when no off load could be restored or the smallest would not fit) rests on what
`plan_loads` restores, pinned here too.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience.config import SiteConfig, load_site
from resilience.model import LoadState, Snapshot, Tier
from resilience.modes import GuardContext, SiteModes
from resilience.policies.shedding import LoadTimes, plan_loads

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"
CONFIG: SiteConfig = load_site(SITE)
BUS = [load for load in CONFIG.loads if load.supply == "bus"]

times_s = st.one_of(st.none(), st.floats(min_value=0.0, max_value=400.0))
recent_s = st.one_of(st.none(), st.floats(min_value=340.0, max_value=400.0))
"""Switching times up to a minute before the first plan (400 s): restore delays (5 s at
the reference site) and minimum off times (up to 180 s) still running then."""


@st.composite
def circuits(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(min_value=1, max_value=len(BUS)))
    loads = []
    times: dict[str, LoadTimes] = {}
    # Mostly a site in priority order (the tiers up to `cut` on, the rest off), as a
    # controller leaves it, with a few relays the other way.
    cut = draw(st.sampled_from(list(Tier)))
    for load in BUS[:n]:
        rated = load.rated_power_w
        tier = draw(st.sampled_from(list(Tier)))
        flip = draw(st.integers(min_value=0, max_value=29)) == 0
        loads.append(
            LoadState(
                load.id,
                tier,
                rated,
                "bus",
                (tier <= cut) != flip,
                draw(st.sampled_from([0.0, 0.3 * rated, rated, 1.2 * rated])),
                draw(st.booleans() | st.just(True)),
            )
        )
        if draw(st.booleans()):
            times[load.id] = LoadTimes(draw(times_s), draw(recent_s | times_s))
    ids = [load.load_id for load in loads]
    off = [load.load_id for load in loads if not load.relay_on] or ids
    # mostly what a controller leaves: lock-outs on loads already off, the mode's cap at
    # or above what is on; sometimes anything
    locked = st.sets(st.sampled_from(off)) | st.sets(st.sampled_from(ids))
    capped = st.sampled_from([t for t in Tier if t >= cut]) | st.sampled_from(list(Tier))
    return {
        "loads": tuple(loads),
        "times": times,
        "locked_off": draw(locked),
        "max_tier": draw(capped),
        "supply_w": draw(st.just(1e6) | st.floats(min_value=0.0, max_value=60_000.0)),
        "last_shed_s": draw(recent_s),
        "now_s": draw(st.floats(min_value=400.0, max_value=402.0) | st.just(400.0)),
        "later_s": draw(
            st.lists(st.floats(min_value=0.0, max_value=4000.0), min_size=1, max_size=4)
        ),
    }


def _modes(case: dict[str, object]) -> SiteModes:
    modes = SiteModes(CONFIG, now_s=0.0)
    modes.memory.load_times = dict(case["times"])  # type: ignore[call-overload]
    modes.memory.locked_off = set(case["locked_off"])  # type: ignore[call-overload]
    if case["last_shed_s"] is not None:
        modes.memory.last_shed_s["bus"] = case["last_shed_s"]  # type: ignore[assignment]
    modes._notes = []
    return modes


def _ctx(modes: SiteModes, now_s: float) -> GuardContext:
    snap = Snapshot(now_s, None, None, (), (), (), None, (), ())
    return GuardContext(snap, now_s, CONFIG, modes.memory)


@settings(max_examples=400, deadline=None)
@given(circuits())
def test_a_kept_plan_is_what_plan_loads_gives_at_any_later_time(case: dict[str, object]) -> None:
    modes = _modes(case)
    loads = case["loads"]
    supply_w, max_tier = case["supply_w"], case["max_tier"]
    now_s = case["now_s"]
    first = modes._plan(
        _ctx(modes, now_s),
        loads,
        supply_w,
        "bus",
        max_tier=max_tier,  # type: ignore[arg-type]
    )
    held = modes._plan_memo.get("bus")
    if held is None:
        return  # planned afresh every cycle: nothing to check
    assert held[2] is first
    for delta in case["later_s"]:  # type: ignore[attr-defined]
        later = now_s + delta  # type: ignore[operator]
        kept = modes._plan(
            _ctx(modes, later),
            loads,
            supply_w,
            "bus",
            max_tier=max_tier,  # type: ignore[arg-type]
        )
        assert kept is first  # the memo answered
        fresh = plan_loads(
            loads,  # type: ignore[arg-type]
            supply_w,  # type: ignore[arg-type]
            modes.memory.load_times,
            later,
            CONFIG.dispatch,
            last_shed_s=modes.memory.last_shed_s.get("bus"),
            max_tier=max_tier,  # type: ignore[arg-type]
            locked_off=frozenset(modes.memory.locked_off),
            max_restores=1,
            min_off_s={load.id: load.min_off_s for load in CONFIG.loads},
        )
        assert (fresh.on, fresh.shed, fresh.restored, fresh.demand_w, fresh.reason) == (
            kept.on,
            kept.shed,
            kept.restored,
            kept.demand_w,
            kept.reason,
        )


def test_a_circuit_with_loads_locked_off_is_planned_once() -> None:
    """The earthquake drill's island: comfort loads locked off by the volunteers, the rest
    on and steady. Its plan is kept (before issue 14 every off load made it be planned
    again every cycle), and a lock-out lifted is planned afresh."""
    loads = tuple(
        LoadState(
            load.id,
            load.tier,
            load.rated_power_w,
            "bus",
            load.tier < Tier.COMFORT,
            0.5 * load.rated_power_w if load.tier < Tier.COMFORT else 0.0,
            True,
        )
        for load in BUS
    )
    comfort = {load.load_id for load in loads if load.tier is Tier.COMFORT}
    assert comfort
    case: dict[str, object] = {
        "times": {},
        "locked_off": comfort,
        "last_shed_s": 10.0,
    }
    modes = _modes(case)
    first = modes._plan(_ctx(modes, 100.0), loads, 100_000.0, "bus")
    assert not first.shed and not first.restored
    assert modes._plan(_ctx(modes, 110.0), loads, 100_000.0, "bus") is first
    lifted = sorted(comfort)[0]
    modes.memory.locked_off.discard(lifted)  # an operator restores one
    again = modes._plan(_ctx(modes, 120.0), loads, 100_000.0, "bus")
    assert again.restored == (lifted,)


@settings(max_examples=400, deadline=None)
@given(circuits())
def test_plan_loads_restores_only_what_the_islands_shortcut_counts(
    case: dict[str, object],
) -> None:
    """`SiteModes._balance` skips its restore plan when no load could be restored (off,
    available, not locked off, within the mode's tier) or the smallest of those would not
    fit: pinned here against `plan_loads` itself."""
    loads: tuple[LoadState, ...] = case["loads"]  # type: ignore[assignment]
    locked = frozenset(case["locked_off"])  # type: ignore[arg-type]
    max_tier: Tier = case["max_tier"]  # type: ignore[assignment]
    supply_w: float = case["supply_w"]  # type: ignore[assignment]
    kwargs = {
        "last_shed_s": case["last_shed_s"],
        "max_tier": max_tier,
        "locked_off": locked,
        "min_off_s": {load.id: load.min_off_s for load in CONFIG.loads},
    }
    now_s: float = case["now_s"]  # type: ignore[assignment]
    times: dict[str, LoadTimes] = case["times"]  # type: ignore[assignment]
    held = plan_loads(loads, supply_w, times, now_s, CONFIG.dispatch, max_restores=0, **kwargs)  # type: ignore[arg-type]
    restore = plan_loads(loads, supply_w, times, now_s, CONFIG.dispatch, max_restores=1, **kwargs)  # type: ignore[arg-type]
    if held.shed or restore.shed:
        return  # _balance restores only on a circuit with nothing to shed
    candidates = [
        load
        for load in loads
        if load.available
        and not load.relay_on
        and load.load_id not in locked
        and load.tier <= max_tier
    ]
    assert set(restore.restored) <= {load.load_id for load in candidates}
    if not candidates:
        assert restore.restored == ()
        return
    dispatch = CONFIG.dispatch
    smallest = min(load.rated_power_w for load in candidates)
    need = smallest * (1 + dispatch.restore_hysteresis_pct / 100)
    if not held.demand_w + need + dispatch.shed_margin_w <= supply_w:
        assert restore.restored == ()
