"""Which device is read when: the poll schedule.

Reading every register of every device every cycle is what a real field cannot carry
(a SunSpec inverter or a charger behind a Modbus TCP gateway answers in tens to
hundreds of milliseconds; RS-485 frames take milliseconds each) and what most of the
controller's CPU went on. Only a few readings decide within a cycle: the grid meter
and the PCC breaker (grid loss, synchronisation), and, while the site is off the grid,
the grid-formers that carry it and the load panels it sheds and restores on. Those are
read every cycle; every other device at its
own `poll_period_s` (default `DEFAULT_POLL_S`), and at once after a command to it and
after every change of mode (the cycle marks them due). Devices whose readings are
pushed (OCPP) cost no I/O to "read" and are read every cycle.

This module is pure: the cycle (`resilience.cycle`) asks it and keeps the clocks.
"""

from __future__ import annotations

from resilience.config import DEFAULT_POLL_S, NO_POLL_DRIVERS, Device, SiteConfig
from resilience.model import Mode

__all__ = ["DEFAULT_POLL_S", "poll_period_s", "read_every_cycle"]

SLOW_GRACE_READS = 2
"""Missed reads in a row before a device read at its own period is unavailable (one
lost reply is not an outage: rule 5), as `cycle.GRACE_READS` is for every-cycle ones."""


def every_cycle(config: SiteConfig) -> frozenset[str]:
    """The devices read every cycle whatever the mode: grid-loss detection and the
    synchronisation check rest on them alone."""
    return frozenset({config.grid.meter, config.grid.pcc_breaker})


def formers(config: SiteConfig) -> frozenset[str]:
    """Polled grid-formers (a charger with role former; an OCPP station is pushed)."""
    return frozenset(
        name
        for name, device in config.chargers.items()
        if device.charger_role == "former" and device.driver not in NO_POLL_DRIVERS
    )


def pushed(config: SiteConfig) -> frozenset[str]:
    return frozenset(name for name, d in config.devices.items() if d.driver in NO_POLL_DRIVERS)


def poll_period_s(config: SiteConfig, device_id: str) -> float:
    """[s] the device's own period (what it is read at when the mode does not ask more)."""
    device: Device = config.devices[device_id]
    cycle = config.site.cycle_period_s
    if device_id in every_cycle(config) or device.driver in NO_POLL_DRIVERS:
        return cycle
    period = device.poll_period_s if device.poll_period_s is not None else DEFAULT_POLL_S
    return max(period, cycle)


def read_every_cycle(config: SiteConfig, mode: Mode, *, blind: bool = False) -> frozenset[str]:
    """The devices read every cycle in `mode`: the grid meter, the PCC breaker and the
    pushed ones always; whenever the site is not plainly on the grid, also the
    grid-formers (one of them carries the island, or is about to) and the load panels
    (an island sheds and restores on their metering: a load measured while the bus was
    dark is no measure of what a restore would add to a live one). `blind`: the grid
    meter and the PCC breaker are both silent, so the devices on the site bus are the
    only witnesses of a grid loss (a dead bus, `modes.grid_dead`): every device is read
    every cycle until one of the two answers again."""
    if blind:
        return frozenset(config.devices)
    fast = every_cycle(config) | pushed(config)
    if mode is not Mode.GRID_CONNECTED:
        fast |= formers(config) | frozenset(config.panels)
    return fast
