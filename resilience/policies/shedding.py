"""Which loads of one supply circuit stay on: shed from the bottom, restore from the top.

Owns load shedding and restoring for one supply circuit (the site bus, or one
V2L outlet's circuit). Units: power [W], time [s]. Priority is the load's
`Tier` (LIFE_SAFETY=0 highest) and, within a tier, its position in the site
file (earlier = more important).

The rules, and why:

* Safety beats comfort. An overloaded island collapses and drops everything,
  life-safety included, so overload shedding, operator lock-outs
  (`locked_off`) and the mode's tier limit (`max_tier`) switch loads off at
  once, ignoring `min_on_s`. Only restoring waits: for `restore_delay_s`
  after the last shed, for each load's `min_off_s` (compressors), and for a
  headroom of `rated_power_w * restore_hysteresis_pct` beyond the shed margin.
  That gap between the shed and the restore threshold is what stops a load
  from chattering.
* Strict priority. Shedding goes lowest priority first, and never leaves a
  lower tier on while a higher tier is off: an inherited state that breaks
  this (a restart, a panel that came back) is repaired by shedding the lower
  tier. Restoring walks from the top, and once a candidate of some tier is
  blocked, no lower tier is restored in the same call; a smaller load of the
  same tier may still go.
* One step at a time. A call that sheds does not restore; a call restores at
  most `max_restores` loads, so each restored load's real draw is measured
  before the next one is added. Loads restored in the same call count at
  rating plus hysteresis against the next candidate, so a batch is as safe
  as one at a time.
* Loads whose panel does not answer are left as they are and are not
  balanced; if their relay was last seen on, their rated power is counted as
  demand we cannot shed.

`plan_loads` is pure: the controller keeps each load's switching times and
the time of the last shed, and passes them in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from resilience.config import DispatchSection
from resilience.model import LoadState, Tier

UNMEASURED_AFTER_ON_S = 2.0
"""[s] after switching a load on, its metering may still read low: count at least its rating."""


@dataclass(frozen=True)
class LoadTimes:
    """When the controller last switched a load's relay on and off [s]; None = long ago."""

    last_on_s: float | None
    last_off_s: float | None


_LONG_AGO = LoadTimes(last_on_s=None, last_off_s=None)


Reason = str | Callable[[], str]
"""A reason, or a function that words it (for reasons that are rarely read)."""


def _tier(load: LoadState) -> Tier:
    return load.tier


@dataclass(frozen=True)
class LoadPlan:
    """The relay state wanted for every load, what changed, and why in one sentence.

    `shed` lists every load this plan switches off, whatever the cause
    (overload, operator lock, mode tier, ordering repair), in switching order;
    the controller should set its `last_shed_s` to now when it is not empty.
    `restored` lists the loads switched back on. `demand_w` [W] is the circuit's
    demand once this plan's sheds are done, before its restores.
    """

    on: dict[str, bool]
    shed: tuple[str, ...]
    restored: tuple[str, ...]
    why: tuple[Reason, ...] = field(compare=False)
    demand_w: float = 0.0

    @property
    def reason(self) -> str:
        """Why, in one sentence. Reasons to hold are only worded when asked for: most
        plans change nothing, and the caller then never reads them."""
        return "; ".join(part if isinstance(part, str) else part() for part in self.why)


def _kw(power_w: float) -> str:
    return f"{power_w / 1000:.1f} kW"


def _draw_w(load: LoadState, times: LoadTimes, now_s: float) -> float:
    """Best estimate [W] of what an on load draws: measured, but at least rated if just on.

    A non-finite measurement counts as rated power; a negative one (meter
    noise) as zero.
    """
    measured = load.power_w
    if not math.isfinite(measured):
        return load.rated_power_w
    measured = max(0.0, measured)
    if times.last_on_s is not None and now_s - times.last_on_s < UNMEASURED_AFTER_ON_S:
        return max(measured, load.rated_power_w)
    return measured


def _off_for_s(times: LoadTimes, now_s: float) -> float:
    return math.inf if times.last_off_s is None else now_s - times.last_off_s


def _held_off(load_id: str, off_s: float, wait_s: float) -> Reason:
    return lambda: f"hold: {load_id} off {off_s:.1f} s of min {wait_s:.1f} s"


def _no_room(load_id: str, need_w: float, margin_w: float, free_w: float) -> Reason:
    return lambda: (
        f"hold: {load_id} needs {_kw(need_w)} + margin {_kw(margin_w)}, {_kw(free_w)} free"
    )


def _restore(
    candidates: Sequence[LoadState],
    demand_w: float,
    supply_w: float,
    times: Mapping[str, LoadTimes],
    min_off_s: Mapping[str, float],
    now_s: float,
    cfg: DispatchSection,
    max_restores: int,
) -> tuple[list[str], list[Reason]]:
    """The off loads to switch back on, highest priority first, and why (not).

    `candidates` are in priority order. Once a candidate is blocked (no room, or
    inside its `min_off_s`), only loads of its own tier may still go.
    """
    margin_w = cfg.shed_margin_w
    restored: list[str] = []
    reasons: list[Reason] = []
    blocked_tier: Tier | None = None
    for load in candidates:
        if len(restored) >= max_restores:
            break
        if blocked_tier is not None and load.tier > blocked_tier:
            break
        need_w = load.rated_power_w * (1 + cfg.restore_hysteresis_pct / 100.0)
        off_s = _off_for_s(times.get(load.load_id, _LONG_AGO), now_s)
        wait_s = min_off_s.get(load.load_id, 0.0)
        if wait_s > 0 and not off_s >= wait_s:
            blocker = _held_off(load.load_id, off_s, wait_s)
        elif not demand_w + need_w + margin_w <= supply_w:
            blocker = _no_room(load.load_id, need_w, margin_w, supply_w - demand_w)
        else:
            restored.append(load.load_id)
            reasons.append(
                f"restore {load.load_id}: load {_kw(demand_w)} + {_kw(need_w)}"
                f" + margin {_kw(margin_w)} <= supply {_kw(supply_w)}"
            )
            # Keep its hysteresis for the next candidate too: loads drawing a
            # little over their rating must not add up to a shed.
            demand_w += need_w
            continue
        if blocked_tier is None:
            blocked_tier = load.tier
            reasons.append(blocker)
    return restored, reasons


def plan_loads(
    loads: Sequence[LoadState],
    supply_w: float,
    times: Mapping[str, LoadTimes],
    now_s: float,
    cfg: DispatchSection,
    *,
    last_shed_s: float | None,
    max_tier: Tier = Tier.COMFORT,
    locked_off: frozenset[str] = frozenset(),
    max_restores: int = 1,
    min_off_s: Mapping[str, float] | None = None,
) -> LoadPlan:
    """Plan the relays of one supply circuit's loads against `supply_w` [W].

    `loads` are the circuit's loads in site-file order. `times` holds when the
    controller last switched each load (missing = long ago). `min_off_s` maps
    load_id to the site file's `min_off_s` [s] (missing = 0); `LoadState` does
    not carry it yet. `last_shed_s` is when any load of this circuit was last
    shed (None = never). `max_tier` is the lowest-priority tier the mode allows
    on; `locked_off` are loads an operator shed.

    Steps: (1) unavailable loads keep their relay and are not balanced;
    locked-off loads and loads beyond `max_tier` go off. (2) While the demand
    exceeds `supply_w - shed_margin_w`, shed the lowest-priority on load, down
    to life-safety if need be. (3) Shed any on load whose tier is lower than an
    off load that may be on. (4) If nothing was shed and `restore_delay_s` has
    passed since `last_shed_s`, restore up to `max_restores` loads from the top.
    A NaN `supply_w` fails every comparison and so holds the present state.
    """
    min_off = min_off_s or {}
    margin_w = cfg.shed_margin_w
    on = {load.load_id: load.relay_on for load in loads}
    shed: list[str] = []
    reasons: list[Reason] = []

    # 1. Loads we cannot command, and loads that must be off whatever the supply.
    fixed_w = 0.0
    balanced: list[LoadState] = []
    locked: list[str] = []
    above_tier: list[str] = []
    for load in loads:
        if not load.available:
            if load.relay_on:
                # Its meter is silent too: assume the worst, its full rating.
                fixed_w += load.rated_power_w
        elif load.load_id in locked_off or load.tier > max_tier:
            if load.relay_on:
                on[load.load_id] = False
                shed.append(load.load_id)
                (locked if load.load_id in locked_off else above_tier).append(load.load_id)
        else:
            balanced.append(load)
    if locked:
        reasons.append(f"shed {', '.join(locked)}: locked off by operator")
    if above_tier:
        reasons.append(f"shed {', '.join(above_tier)}: mode allows {max_tier.label} and above")
    # Priority order: by tier, then site-file order (a stable sort keeps it within a tier).
    by_priority = sorted(balanced, key=_tier)

    # 2. Overload: shed from the bottom until the demand fits under the margin.
    draw: dict[str, float] = {}
    for load in balanced:
        if load.relay_on:
            draw[load.load_id] = _draw_w(load, times.get(load.load_id, _LONG_AGO), now_s)
    demand_w = fixed_w + sum(draw.values())
    limit_w = supply_w - margin_w
    overload: list[str] = []
    if demand_w > limit_w:
        start_w = demand_w
        for load in reversed(by_priority):
            if not demand_w > limit_w:
                break
            if on[load.load_id]:
                on[load.load_id] = False
                demand_w -= draw[load.load_id]
                overload.append(load.load_id)
        shed.extend(overload)
        if overload:
            reasons.append(
                f"shed {', '.join(overload)}: load {_kw(start_w)} > supply {_kw(supply_w)}"
                f" - margin {_kw(margin_w)}"
            )

    # 3. Ordering repair: no lower tier on while a higher tier that may be on is off.
    off_now = [load for load in by_priority if not on[load.load_id]]
    if off_now:
        top_off = off_now[0]
        out_of_order = [
            load.load_id
            for load in reversed(by_priority)
            if on[load.load_id] and load.tier > top_off.tier
        ]
        for load_id in out_of_order:
            on[load_id] = False
            demand_w -= draw[load_id]
        if out_of_order:
            shed.extend(out_of_order)
            reasons.append(
                f"shed {', '.join(out_of_order)}: lower tier on while"
                f" {top_off.load_id} ({top_off.tier.label}) is off"
            )
            off_now = [load for load in by_priority if not on[load.load_id]]

    # 4. Restore from the top, one step at a time, never past a blocked higher tier.
    since_shed_s = math.inf if last_shed_s is None else now_s - last_shed_s
    if shed or not off_now:
        restored: list[str] = []
    elif not since_shed_s >= cfg.restore_delay_s:
        restored = []
        delay_s = cfg.restore_delay_s
        reasons.append(lambda: f"hold: restore delay {since_shed_s:.1f} s of {delay_s:.1f} s")
    else:
        restored, restore_reasons = _restore(
            off_now, demand_w, supply_w, times, min_off, now_s, cfg, max_restores
        )
        reasons.extend(restore_reasons)
    for load_id in restored:
        on[load_id] = True

    if not reasons:
        held_w = demand_w
        reasons.append(lambda: f"hold: load {_kw(held_w)} within supply {_kw(supply_w)}")
    return LoadPlan(
        on=on, shed=tuple(shed), restored=tuple(restored), why=tuple(reasons), demand_w=demand_w
    )
