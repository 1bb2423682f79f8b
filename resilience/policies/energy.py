"""The endurance policy: which tiers one supply circuit can afford to keep on, in energy.

The power-balance rules (`policies.shedding`) keep an island from collapsing now; this
keeps it alive for days. Every cycle, for each supply circuit (the site bus, and each
V2L circuit with its own car), it answers: with the energy above the cars' reserves,
which is the lowest tier that may stay on so that every tier above it is still carried
for its target? Units: power [W], energy [Wh], time [h].

The rule, and why:

* A tier's demand is what its loads draw: measured for a load that is on, its rating
  for one that is off (what switching it on would cost), nothing for a load an operator
  locked off. `tiers_w` adds them up per tier.
* Targets count from now (a receding horizon): nobody knows when the grid returns, so
  the site always keeps enough to carry life-safety `target` more hours. Targets may not
  grow down the tiers (the site file is checked), so the energy that carries tiers
  0..k, each for its own target, is a staircase: all of them until the lowest target,
  then one tier fewer, and so on (`energy_needed_wh`). Firm PV (`pv_firm_fraction` of the
  present output, as the supply capacity counts it) offsets the draw in every step.
* Tier k may stay on while the energy covers that staircase; a lower tier runs only on
  what is left once the higher tiers' targets are secured, and is shed as soon as it
  would eat into them. So tiers go from the bottom, one at a time, as the energy falls.
* A shed tier comes back (from the top) only when the energy covers its staircase plus
  `hysteresis_h` hours of its draw: a donor arriving, PV charging the cars. In between,
  the tier keeps its state, so a load never chatters on a small change of the figures.
* When even life-safety alone cannot reach its target, everything below it is shed and
  life-safety is carried as long as the energy lasts (`EnergyCap.short`): the caller
  raises one alarm with the hours projected against the target.

`allowed_tier` is pure; the caller keeps `previous` (last cycle's answer per circuit).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from resilience.model import LoadState, Tier

TIERS: tuple[Tier, ...] = tuple(Tier)
_BELOW: dict[Tier, Tier] = {t: Tier(t + 1) for t in TIERS[:-1]}


def demand_w(load: LoadState, last_draw_w: Mapping[str, float] | None = None) -> float:
    """[W] what keeping this load on costs: measured when on; when off or unread, what it
    drew when last seen on (`last_draw_w`), else its rating. Counting a shed load at its
    rating when it draws a third of it would keep it off for good."""
    if load.available and load.relay_on and math.isfinite(load.power_w):
        return max(0.0, load.power_w)
    if last_draw_w is not None:
        seen = last_draw_w.get(load.load_id)
        if seen is not None and math.isfinite(seen):
            return min(load.rated_power_w, max(0.0, seen))
    return load.rated_power_w


def tiers_w(
    loads: Iterable[LoadState],
    locked_off: Collection[str] = (),
    last_draw_w: Mapping[str, float] | None = None,
) -> dict[Tier, float]:
    """Demand [W] per tier of a circuit's loads; locked-off loads cost nothing."""
    out = dict.fromkeys(TIERS, 0.0)
    for load in loads:
        if load.load_id not in locked_off:
            out[load.tier] += demand_w(load, last_draw_w)
    return out


def _drain_w(tier_w: Mapping[Tier, float], lowest: Tier, pv_w: float) -> float:
    """[W] drawn from the cars with tiers up to `lowest` on, net of firm PV."""
    return max(0.0, sum(tier_w[t] for t in TIERS if t <= lowest) - max(0.0, pv_w))


def projection_h(
    energy_wh: float, tier_w: Mapping[Tier, float], pv_w: float = 0.0
) -> dict[Tier, float]:
    """Hours [h] the energy carries each tier together with the tiers above it (all of
    them on, nothing below); `math.inf` when firm PV covers them or they draw nothing."""
    out: dict[Tier, float] = {}
    for tier in TIERS:
        drain = _drain_w(tier_w, tier, pv_w)
        out[tier] = math.inf if drain <= 0 else max(0.0, energy_wh) / drain
    return out


def energy_needed_wh(
    tier_w: Mapping[Tier, float], targets_h: Mapping[Tier, float], lowest: Tier, pv_w: float = 0.0
) -> float:
    """[Wh] to carry every tier from life-safety down to `lowest` for its own target.

    The staircase: tiers 0..lowest together until the shortest of their targets, then
    one tier fewer until the next, and so on up to life-safety's target.
    """
    need = 0.0
    for tier in TIERS:
        if tier > lowest:
            break
        below = Tier(tier + 1) if tier < lowest else None
        span_h = targets_h[tier] - (targets_h[below] if below is not None else 0.0)
        need += _drain_w(tier_w, tier, pv_w) * max(0.0, span_h)
    return need


def staircase_h(targets_h: Mapping[Tier, float], hysteresis_h: float) -> dict[Tier, float]:
    """The targets [h] the staircase uses: each below the top at least `hysteresis_h` (but
    never more than the tier above it), so that a tier with a 0 h target (comfort) still
    goes before the tier above it, not in the same instant: it runs only while the energy
    covers `hysteresis_h` more of it on top of the higher tiers' targets. All targets 0
    (the policy off) stay 0."""
    out: dict[Tier, float] = {}
    above: float | None = None
    for tier in TIERS:
        own = max(0.0, targets_h[tier])
        out[tier] = own if above is None else max(own, min(hysteresis_h, above))
        above = out[tier]
    return out


def top_tier(tier_w: Mapping[Tier, float]) -> Tier | None:
    """The highest-priority tier with any demand, or None when nothing draws."""
    for tier in TIERS:
        if tier_w[tier] > 0:
            return tier
    return None


def carried_h(
    energy_wh: float,
    tier_w: Mapping[Tier, float],
    targets_h: Mapping[Tier, float],
    lowest: Tier,
    pv_w: float = 0.0,
) -> float:
    """Hours [h] the top tier (the highest with any demand) is carried if tiers from it
    down to `lowest` are on now and each one below it is shed at its own target (the
    staircase of `energy_needed_wh`); the top tier goes on until the energy is gone.
    `math.inf` when firm PV covers the top tier."""
    top = top_tier(tier_w)
    if top is None:
        return math.inf
    left = max(0.0, energy_wh)
    elapsed = 0.0
    for tier in reversed([t for t in TIERS if top <= t <= lowest]):
        drain = _drain_w(tier_w, tier, pv_w)
        until_h = math.inf if tier == top else targets_h[tier]
        span_h = max(0.0, until_h - elapsed)
        if drain <= 0:
            if tier == top:
                return math.inf
            elapsed = max(elapsed, until_h)
            continue
        if left <= drain * span_h:
            return elapsed + left / drain
        left -= drain * span_h
        elapsed = until_h
    return elapsed


@dataclass(frozen=True)
class EnergyCap:
    """One circuit's answer: the lowest tier that may stay on, and the figures behind it.

    `projection_h` is `projection_h(...)` per tier. `short` is set when the top tier with
    loads cannot reach its target even with everything below shed: `short_h` hours
    against `short_target_h`. `reasons` words why each tier below `tier` is off.
    """

    tier: Tier
    energy_wh: float
    pv_w: float
    demand_w: Mapping[Tier, float]
    targets_h: Mapping[Tier, float]
    stairs_h: Mapping[Tier, float] = field(default_factory=dict)  # `staircase_h` of targets
    short: Tier | None = None
    short_h: float = math.inf
    short_target_h: float = 0.0

    @cached_property
    def projection_h(self) -> Mapping[Tier, float]:
        """`projection_h(...)` of this circuit: worked out when asked (most cycles nobody
        reads it)."""
        return projection_h(self.energy_wh, self.demand_w, self.pv_w)

    def reason(self, tier: Tier) -> str:
        """Why a load of `tier` is off for energy, in words for the tablet."""
        top = self.top_tier
        if tier <= self.tier or top is None:
            return ""
        hours = self.hours_with(tier)
        with_it = f"with {tier.label} on" if tier > top else f"{top.label} alone"
        return (
            f"saving energy: {with_it}, {top.label} would last {_hours(hours)},"
            f" target {self.targets_h[top]:g} h"
        )

    def hours_with(self, tier: Tier) -> float:
        """Hours [h] the top tier would last with tiers down to `tier` on (`carried_h`)."""
        stairs = self.stairs_h or self.targets_h
        return carried_h(self.energy_wh, self.demand_w, stairs, tier, self.pv_w)

    @property
    def top_tier(self) -> Tier | None:
        """The highest-priority tier with any demand on this circuit."""
        return top_tier(self.demand_w)


def _hours(hours: float) -> str:
    return "without limit" if not math.isfinite(hours) else f"{hours:.1f} h"


@dataclass(frozen=True)
class Thresholds:
    """The energies [Wh] at which one circuit's tiers are allowed (`thresholds`): they
    change with its demand, firm PV and last answer, not with its energy, so a caller
    may keep them while those stay the same and compare each cycle's energy."""

    top: Tier | None
    needs: tuple[tuple[Tier, float], ...]  # below the top, in priority order
    top_drain_w: float  # [W] the top tier alone, net of firm PV
    top_target_h: float


def thresholds(
    demand_w: Mapping[Tier, float],
    stairs_h: Mapping[Tier, float],
    targets_h: Mapping[Tier, float],
    hysteresis_h: float,
    previous: Tier | None,
    pv_w: float = 0.0,
) -> Thresholds:
    """Each tier's `energy_needed_wh` on the staircase `stairs_h`, plus `hysteresis_h`
    hours of its draw for a tier below `previous` (None: everything was on). One pass
    down the tiers: the draw with tiers 0..t on, and the staircase's energy above t."""
    was = Tier.COMFORT if previous is None else previous
    pv = max(0.0, pv_w)
    top = top_tier(demand_w)
    needs: list[tuple[Tier, float]] = []
    total_w = 0.0
    above_wh = 0.0  # Σ drain_i x (stairs_i - stairs_(i+1)) over the tiers above
    top_drain = 0.0
    for tier in TIERS:
        total_w += demand_w[tier]
        drain = total_w - pv if total_w > pv else 0.0
        if tier == top:
            top_drain = drain
        elif top is not None and tier > top and demand_w[tier] > 0:
            need = above_wh + drain * stairs_h[tier]
            if tier > was:
                need += hysteresis_h * drain
            needs.append((tier, need))
        if tier < Tier.COMFORT:
            above_wh += drain * (stairs_h[tier] - stairs_h[_BELOW[tier]])
    return Thresholds(
        top=top,
        needs=tuple(needs),
        top_drain_w=top_drain,
        top_target_h=targets_h[top] if top is not None else 0.0,
    )


def allowed_tier(
    energy_wh: float,
    loads: Iterable[LoadState],
    targets_h: Mapping[Tier, float],
    hysteresis_h: float,
    previous: Tier | None,
    *,
    pv_w: float = 0.0,
    locked_off: Collection[str] = (),
    last_draw_w: Mapping[str, float] | None = None,
    demand_w: Mapping[Tier, float] | None = None,
    stairs_h: Mapping[Tier, float] | None = None,
    limits: Thresholds | None = None,
) -> EnergyCap:
    """The lowest tier of a circuit's `loads` that may stay on for its energy.

    `energy_wh` is the energy above the reserves of that circuit's own cars; `pv_w` the
    firm PV on it (0 for a V2L circuit); `previous` is the last answer (None: none yet,
    taken as everything on: a restart restores nothing early, it only sheds).
    Tier k stays allowed while `energy_wh >= energy_needed_wh(..., k)` (on the
    `staircase_h` of the targets); a tier below `previous` is allowed again only with
    `hysteresis_h` hours of its draw to spare. The top tier with any demand (life-safety,
    mostly) is always allowed: it is carried as long as the energy lasts. `last_draw_w`
    is what each load drew when last measured on (see `demand_w`).

    This runs every cycle for every circuit: a caller that already has
    `tiers_w(loads, locked_off, last_draw_w)`, `staircase_h(targets_h, hysteresis_h)`
    or the `thresholds` for them may pass them (`demand_w`, `stairs_h`, `limits`).
    """
    demand = tiers_w(loads, locked_off, last_draw_w) if demand_w is None else demand_w
    stairs = staircase_h(targets_h, hysteresis_h) if stairs_h is None else stairs_h
    if limits is None:
        limits = thresholds(demand, stairs, targets_h, hysteresis_h, previous, pv_w)
    energy = max(0.0, energy_wh) if math.isfinite(energy_wh) else 0.0
    top = limits.top
    allowed = top if top is not None else Tier.LIFE_SAFETY  # always carried, to the end
    for tier, need in limits.needs:
        if not energy >= need:
            break
        allowed = tier
    short: Tier | None = None
    short_h = math.inf
    drain = limits.top_drain_w
    if top is not None and drain > 0 and energy < drain * limits.top_target_h:
        short, short_h = top, energy / drain
    return EnergyCap(
        tier=allowed,
        energy_wh=energy,
        pv_w=pv_w,
        demand_w=demand,
        targets_h=targets_h,
        stairs_h=stairs,
        short=short,
        short_h=short_h,
        short_target_h=limits.top_target_h if short is not None else 0.0,
    )


def kept_tier(cap: Tier, kept_on: Iterable[LoadState]) -> Tier:
    """The energy cap with the loads an operator keeps on against it: the cap drops no
    higher than the lowest-priority kept load's tier, so that nothing above it is shed
    while it stays on (safety rule 4)."""
    out = cap
    for load in kept_on:
        if load.tier > out:
            out = load.tier
    return out
