"""How long a simulated device takes to answer: one reply-time model per device family.

A field device answers a request after its own processing time: usually a few
milliseconds for a meter or an I/O controller, a hundred or more for a PV inverter,
and now and then much more (a busy firmware, a flash write, a gateway serving
another master). `LatencyModel` describes that for one family: a lognormal body
around `median_s` (spread `sigma`, the standard deviation of its logarithm), plus a
slow reply with probability `slow_probability`, uniform in [`slow_min_s`,
`max_s`]. Every reply is at most `max_s`, the family's `max_reply_s` in
`resilience.device_families`, so a timeout that check-config accepts never fires on
a healthy simulated device.

`sample_latency` is pure: it draws from the `random.Random` it is given. Each
simulated device has its own generator (`DeviceLatency`), seeded from the site's
seed and its device id, so a run is reproducible and one device's requests do not
shift another's draws. Where the defaults come from: docs/registers.md, "Device
response times". Units: seconds [s].
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from firmware_sim.devices import SimulatedDevice
from resilience.config import SiteConfig
from resilience.device_families import FAMILIES, family_timing

__all__ = [
    "MODELS",
    "DeviceLatency",
    "LatencyModel",
    "reply_delay_s",
    "sample_latency",
    "site_latencies",
]


@dataclass(frozen=True)
class LatencyModel:
    """Reply times of one device family [s] (see the module docstring)."""

    family: str
    median_s: float
    sigma: float
    slow_probability: float
    slow_min_s: float
    max_s: float

    def __post_init__(self) -> None:
        if not 0 < self.median_s <= self.slow_min_s <= self.max_s:
            raise ValueError(
                f"{self.family}: need 0 < median_s <= slow_min_s <= max_s, got {self.median_s},"
                f" {self.slow_min_s}, {self.max_s}"
            )
        if self.sigma < 0 or not 0 <= self.slow_probability < 1:
            raise ValueError(
                f"{self.family}: need sigma >= 0 and 0 <= slow_probability < 1, got"
                f" {self.sigma}, {self.slow_probability}"
            )


def sample_latency(model: LatencyModel, rng: random.Random) -> float:
    """[s] one reply time drawn from `model` with `rng`."""
    if rng.random() < model.slow_probability:
        return rng.uniform(model.slow_min_s, model.max_s)
    return min(rng.lognormvariate(math.log(model.median_s), model.sigma), model.max_s)


def _model(family: str, sigma: float, slow_probability: float, slow_min_s: float) -> LatencyModel:
    timing = family_timing(family)
    return LatencyModel(
        family,
        median_s=timing.typical_s,
        sigma=sigma,
        slow_probability=slow_probability,
        slow_min_s=slow_min_s,
        max_s=timing.max_reply_s,
    )


MODELS: dict[str, LatencyModel] = {
    m.family: m
    for m in (
        _model("sunspec_meter", sigma=0.35, slow_probability=0.005, slow_min_s=0.008),
        _model("pcc_breaker", sigma=0.30, slow_probability=0.005, slow_min_s=0.004),
        _model("bidirectional_charger", sigma=0.35, slow_probability=0.01, slow_min_s=0.010),
        _model("load_panel", sigma=0.50, slow_probability=0.01, slow_min_s=0.020),
        _model("v2l_outlet", sigma=0.50, slow_probability=0.01, slow_min_s=0.030),
        _model("v2l_serial", sigma=0.40, slow_probability=0.005, slow_min_s=0.008),
        _model("sunspec_inverter", sigma=0.50, slow_probability=0.02, slow_min_s=0.300),
        _model("ocpp", sigma=0.60, slow_probability=0.02, slow_min_s=0.500),
    )
}
"""The default model of every family of `resilience.device_families.FAMILIES`."""

assert MODELS.keys() == FAMILIES.keys(), "a device family without a latency model"


class DeviceLatency:
    """One simulated device's reply times: its family's model and its own generator."""

    def __init__(self, model: LatencyModel, seed: str) -> None:
        self.model = model
        self.seed = seed
        self._rng = random.Random(seed)
        self.replies = 0

    def next_s(self) -> float:
        """[s] how long the next reply takes."""
        self.replies += 1
        return sample_latency(self.model, self._rng)


def reply_delay_s(
    devices: Mapping[int, SimulatedDevice], latencies: Mapping[str, DeviceLatency], unit: int
) -> float:
    """[s] how long the device at `unit` takes to answer this request: nothing for a silent
    or unknown one (it never answers), its own draw otherwise (none: at once)."""
    device = devices.get(unit)
    if device is None or device.silent:
        return 0.0
    latency = latencies.get(device.device_id)
    return 0.0 if latency is None else latency.next_s()


def site_latencies(
    config: SiteConfig,
    seed: int = 0,
    models: Mapping[str, LatencyModel] = MODELS,
) -> dict[str, DeviceLatency]:
    """Device id -> its `DeviceLatency` for every device of the site file, each seeded
    with ``"<seed>:<device id>"`` (reproducible, independent of the other devices)."""
    return {
        device_id: DeviceLatency(models[device.driver], f"{seed}:{device_id}")
        for device_id, device in config.devices.items()
    }
