"""`GET /metrics`: the controller in Prometheus text format, for a site's monitoring.

One `CollectorRegistry` per app (never the library's global one), built at the
first scrape by `metrics_for(app)` and kept in ``app.state``: two apps in one
process (tests) never share a metric. `ControllerCollector` reads the
controller's published state at scrape time; it never touches a device.

    resilience_cycle_duration_seconds          last cycle, read to publish [s]
    resilience_cycle_interval_seconds          recent start-to-start intervals [s] (summary:
                                               count, sum; max and p99 as gauges)
    resilience_cycle_period_seconds            the configured period [s]
    resilience_cycles_total / _overruns_total  cycles run / cycles that ran past their period
    resilience_cycles_kept_total               cycles on a steady grid that kept the last
                                               decision (`resilience.steady`)
    resilience_mode{mode}                      1 for the current mode, 0 for the others
    resilience_mode_since_seconds              monotonic seconds in the current mode [s]
    resilience_device_up{device,driver,transport}   1 answering, 0 unavailable
    resilience_device_consecutive_failures{device}  failed reads in a row
    resilience_load_power_watts{tier}          power served to each tier now [W]
    resilience_energy_served_wh_total{tier}    energy served to each tier since the first
                                               scrape (integrated each cycle) [Wh]
    resilience_energy_above_reserve_wh{connector}   vehicles' energy above their reserve [Wh]
    resilience_endurance_hours{circuit,tier}   hours a supply circuit's own energy carries
                                               the tier and those above it (circuit "bus"
                                               is the headline; +Inf: no limit)
    resilience_endurance_allowed_tier{circuit} lowest tier the endurance policy lets stay
                                               on (0 life-safety .. 3 comfort)
    resilience_alarm_active{code}              1 for each active alarm
    resilience_store_healthy / _backlog / _dropped_telemetry_total

Read-only, and it needs a token (any role: viewer and above), like the status it
summarises: unauthenticated, anyone on the shelter's LAN could see whether it runs on
batteries and how much energy is left in each car. Prometheus sends one with
`authorization: {credentials_file: ...}` in its scrape config (README). It shows no
token, name or command. Units are in the names (Prometheus conventions).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from resilience.api.security import require
from resilience.model import Mode, Tier

if TYPE_CHECKING:
    from fastapi import FastAPI

    from resilience.cycle import Controller, SiteStatus

__all__ = ["ControllerCollector", "EnergyMeter", "metrics_for", "router"]

router = APIRouter()
INTERVALS = 500  # recent cycle intervals summarised


class EnergyMeter:
    """Integrates the power served to each tier, cycle by cycle (a `Controller.on_status`
    listener); energy [Wh] = power [W] x time between published snapshots [h]."""

    def __init__(self) -> None:
        self.served_wh = {tier: 0.0 for tier in Tier}
        self.power_w = {tier: 0.0 for tier in Tier}
        self._last_s: float | None = None

    def on_status(self, status: SiteStatus) -> None:
        snap = status.snapshot
        power = {tier: 0.0 for tier in Tier}
        for load in snap.loads:
            if load.available and load.relay_on:
                power[load.tier] += max(0.0, load.power_w)
        if self._last_s is not None:
            hours = max(0.0, snap.time_s - self._last_s) / 3600.0
            for tier in Tier:
                self.served_wh[tier] += self.power_w[tier] * hours
        self._last_s = snap.time_s
        self.power_w = power


class ControllerCollector(Collector):
    """Reads one controller at scrape time."""

    def __init__(self, controller: Controller, energy: EnergyMeter) -> None:
        self.controller = controller
        self.energy = energy

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | SummaryMetricFamily]:
        c = self.controller
        stats = c.stats
        yield _gauge(
            "resilience_cycle_duration_seconds",
            "Time the last control cycle took, from reading to publishing",
            stats.last_duration_s,
        )
        yield _gauge(
            "resilience_cycle_period_seconds",
            "Configured control cycle period",
            c.config.site.cycle_period_s,
        )
        starts = list(stats.starts)[-(INTERVALS + 1) :]
        intervals = [b - a for a, b in itertools.pairwise(starts)]
        summary = SummaryMetricFamily(
            "resilience_cycle_interval_seconds",
            f"Start-to-start intervals of the last {INTERVALS} cycles",
        )
        summary.add_metric([], count_value=len(intervals), sum_value=sum(intervals))
        yield summary
        yield _gauge(
            "resilience_cycle_interval_max_seconds",
            f"Longest start-to-start interval of the last {INTERVALS} cycles",
            max(intervals, default=0.0),
        )
        ordered = sorted(intervals)
        yield _gauge(
            "resilience_cycle_interval_p99_seconds",
            f"99th percentile of the start-to-start intervals of the last {INTERVALS} cycles",
            ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0,
        )
        yield CounterMetricFamily(
            "resilience_cycles", "Control cycles run", value=float(stats.cycles)
        )
        yield CounterMetricFamily(
            "resilience_cycles_kept",
            "Cycles on a steady grid that kept the last decision",
            value=float(stats.kept),
        )
        yield CounterMetricFamily(
            "resilience_cycle_overruns",
            "Cycles that ran past their period",
            value=float(stats.overruns),
        )
        status = c.status
        mode = status.mode if status is not None else c.modes.mode
        modes = GaugeMetricFamily("resilience_mode", "1 for the current mode", labels=["mode"])
        for m in Mode:
            modes.add_metric([m.value], 1.0 if m is mode else 0.0)
        yield modes
        if status is not None:
            yield _gauge(
                "resilience_mode_since_seconds",
                "Monotonic time spent in the current mode",
                max(0.0, c.clock() - status.mode_since_s),
            )
        up = GaugeMetricFamily(
            "resilience_device_up",
            "1 when the device answered, 0 when unavailable",
            labels=["device", "driver", "transport"],
        )
        failures = GaugeMetricFamily(
            "resilience_device_consecutive_failures",
            "Failed reads in a row",
            labels=["device"],
        )
        for name, slot in c.slots.items():
            device = c.config.devices.get(name)
            driver = device.driver if device else ""
            transport = device.transport if device else ""
            up.add_metric([name, driver, transport], 1.0 if slot.available else 0.0)
            failures.add_metric([name], float(slot.failures))
        yield up
        yield failures
        power = GaugeMetricFamily(
            "resilience_load_power_watts", "Power served to each tier now", labels=["tier"]
        )
        energy = CounterMetricFamily(
            "resilience_energy_served_wh",
            "Energy served to each tier since the first scrape",
            labels=["tier"],
        )
        for tier in Tier:
            power.add_metric([tier.label], self.energy.power_w[tier])
            energy.add_metric([tier.label], self.energy.served_wh[tier])
        yield power
        yield energy
        reserve = GaugeMetricFamily(
            "resilience_energy_above_reserve_wh",
            "Energy each vehicle holds above its owner's reserve",
            labels=["connector"],
        )
        if status is not None:
            for v in status.snapshot.vehicles:
                if v.available and v.plugged:
                    reserve.add_metric([v.charger_id], v.energy_above_reserve_wh)
            for o in status.snapshot.outlets:
                if o.available:
                    reserve.add_metric([o.outlet_id], o.energy_above_reserve_wh)
        yield reserve
        endurance = GaugeMetricFamily(
            "resilience_endurance_hours",
            "Hours each supply circuit's own energy carries a tier with the tiers above it",
            labels=["circuit", "tier"],
        )
        allowed = GaugeMetricFamily(
            "resilience_endurance_allowed_tier",
            "Lowest tier the endurance policy lets stay on (0 life-safety .. 3 comfort)",
            labels=["circuit"],
        )
        if status is not None:
            for circuit, view in status.energy.items():
                for tier in Tier:
                    endurance.add_metric([circuit, tier.label], view.cap.projection_h[tier])
                allowed.add_metric([circuit], float(view.cap.tier))
        yield endurance
        yield allowed
        alarms = GaugeMetricFamily(
            "resilience_alarm_active", "1 for each active alarm", labels=["code"]
        )
        for code in sorted(c.modes.memory.active_alarms):
            alarms.add_metric([code], 1.0)
        yield alarms
        store = c.store
        yield _gauge(
            "resilience_store_healthy", "1 when the store's last write committed", store.healthy
        )
        yield _gauge("resilience_store_backlog", "Records waiting to be written", store.backlog)
        yield CounterMetricFamily(
            "resilience_store_dropped_telemetry",
            "Telemetry samples dropped while the store could not write",
            value=float(store.dropped_telemetry),
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def metrics_for(app: FastAPI, controller: Controller) -> CollectorRegistry:
    """The app's own registry, created on first use with a collector over `controller`."""
    registry: CollectorRegistry | None = getattr(app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        energy = EnergyMeter()
        controller.on_status(energy.on_status)
        registry.register(ControllerCollector(controller, energy))
        app.state.metrics_registry = registry
    return registry


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require("viewer"))])
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the controller (see the module docstring)."""
    controller: Controller = request.app.state.api.controller
    registry = metrics_for(request.app, controller)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
