"""How fast each device family answers: the figures the site-file check and the simulator share.

A family is a driver name of the site file (`resilience.config.DriverName`). For each,
`FamilyTiming` says how long a healthy device of that family takes to answer one
request (its own processing time, before any serial frame is on the wire): the
`typical_s` reply, the `max_reply_s` that even its occasional slow replies stay within,
and `least_timeout_s`, the shortest read timeout a site file may give such a device
(`max_reply_s` plus room for the network and a busy gateway). A shorter timeout would
fire on a healthy device, and the controller would then take it for a lost one.

`firmware_sim.latency` draws the simulated devices' replies from these figures (every
reply within `max_reply_s`), so the simulator and `resilience check-config` agree.
On a serial line the frames come on top (`resilience.rs485`); for an OCPP station the
figure bounds the answer to one call of the central system (`[ocpp] call_timeout_s`).

Where each figure comes from (a published figure, a measurement in a public issue, or
an assumption) is in docs/registers.md, "Device response times".
Units: seconds [s].
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAMILIES", "FamilyTiming", "family_timing"]


@dataclass(frozen=True)
class FamilyTiming:
    """Reply times of one device family [s]: typical <= max_reply <= least_timeout."""

    family: str
    typical_s: float
    """[s] the median reply."""
    max_reply_s: float
    """[s] the slowest reply of a healthy device (slow replies included)."""
    least_timeout_s: float
    """[s] the shortest timeout a site file may set for it."""

    def __post_init__(self) -> None:
        if not 0 < self.typical_s <= self.max_reply_s <= self.least_timeout_s:
            raise ValueError(
                f"{self.family}: need 0 < typical_s <= max_reply_s <= least_timeout_s, got"
                f" {self.typical_s}, {self.max_reply_s}, {self.least_timeout_s}"
            )


FAMILIES: dict[str, FamilyTiming] = {
    t.family: t
    for t in (
        # Read every cycle: chosen for speed (an instrument-class meter, an I/O controller,
        # a power-conversion controller). Their least timeouts fit a 20 ms cycle.
        FamilyTiming("sunspec_meter", typical_s=0.004, max_reply_s=0.012, least_timeout_s=0.015),
        FamilyTiming("pcc_breaker", typical_s=0.002, max_reply_s=0.008, least_timeout_s=0.010),
        FamilyTiming(
            "bidirectional_charger", typical_s=0.006, max_reply_s=0.014, least_timeout_s=0.018
        ),
        # Read at their own, slower rates.
        FamilyTiming("load_panel", typical_s=0.008, max_reply_s=0.060, least_timeout_s=0.080),
        FamilyTiming("v2l_outlet", typical_s=0.010, max_reply_s=0.080, least_timeout_s=0.100),
        FamilyTiming("v2l_serial", typical_s=0.003, max_reply_s=0.015, least_timeout_s=0.020),
        FamilyTiming("sunspec_inverter", typical_s=0.120, max_reply_s=0.800, least_timeout_s=1.0),
        FamilyTiming("ocpp", typical_s=0.100, max_reply_s=1.500, least_timeout_s=2.0),
    )
}
"""Every driver of the site file, by name."""


def family_timing(driver: str) -> FamilyTiming:
    """The figures of `driver`'s family; KeyError naming the known ones otherwise."""
    try:
        return FAMILIES[driver]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise KeyError(f"no response-time figures for driver {driver!r} (known: {known})") from None
