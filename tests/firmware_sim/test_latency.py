"""Simulated devices answer late: the reply-time model, and the Modbus servers that act it out.

The sampler (`firmware_sim.latency`) is checked for its shape, its slow-reply rate,
its bound and its seeding; the servers (`firmware_sim.replies`) with a real pymodbus
client: a slow device on one port does not hold up another port's, and a reply that
comes after the client gave up never answers the client's next question.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from firmware_sim.__main__ import parse_args
from firmware_sim.devices import build_devices
from firmware_sim.latency import (
    MODELS,
    DeviceLatency,
    LatencyModel,
    sample_latency,
    site_latencies,
)
from firmware_sim.plant import Plant
from firmware_sim.server import EndpointServer, SimSite
from resilience.config import load_site
from resilience.device_families import FAMILIES
from resilience.drivers.registers import SUNSPEC_BASE, SUNSPEC_MARKER

SITE = Path(__file__).resolve().parents[2] / "config" / "site.toml"
SHAPE = LatencyModel(
    "test", median_s=0.01, sigma=0.3, slow_probability=0.05, slow_min_s=0.1, max_s=0.2
)


def fixed(delay_s: float) -> DeviceLatency:
    """Every reply exactly `delay_s` late."""
    model = LatencyModel("fixed", delay_s, 0.0, 0.0, delay_s, delay_s)
    return DeviceLatency(model, "fixed")


def test_the_body_is_lognormal_around_the_median_and_slow_replies_come_at_their_rate() -> None:
    rng = random.Random(7)
    draws = [sample_latency(SHAPE, rng) for _ in range(20_000)]
    slow = [d for d in draws if d >= SHAPE.slow_min_s]
    body = [d for d in draws if d < SHAPE.slow_min_s]
    assert len(slow) / len(draws) == pytest.approx(0.05, abs=0.008)
    assert all(SHAPE.slow_min_s <= d <= SHAPE.max_s for d in slow)
    assert statistics.median(body) == pytest.approx(0.01, rel=0.03)
    assert statistics.stdev(math.log(d) for d in body) == pytest.approx(0.3, rel=0.05)
    # the slow replies spread over their whole range, not at one value
    assert min(slow) < 0.12 and max(slow) > 0.18


def test_a_device_s_replies_are_reproducible_and_its_own() -> None:
    model = MODELS["sunspec_inverter"]
    pv = DeviceLatency(model, "0:pv")
    seq = [pv.next_s() for _ in range(50)]
    assert len(set(seq)) == 50  # jitter: no two replies alike
    again, other = DeviceLatency(model, "0:pv"), DeviceLatency(model, "0:pv_2")
    assert [again.next_s() for _ in range(50)] == seq
    assert [other.next_s() for _ in range(50)] != seq
    config = load_site(SITE)
    a, b = site_latencies(config, seed=1), site_latencies(config, seed=1)
    c = site_latencies(config, seed=2)
    assert set(a) == set(config.devices)
    draws_a = {d: [a[d].next_s() for _ in range(5)] for d in a}
    assert draws_a == {d: [b[d].next_s() for _ in range(5)] for d in b}
    assert draws_a != {d: [c[d].next_s() for _ in range(5)] for d in c}


def test_every_family_answers_within_the_least_timeout_check_config_allows() -> None:
    assert MODELS.keys() == FAMILIES.keys()
    rng = random.Random(3)
    for family, model in MODELS.items():
        timing = FAMILIES[family]
        assert model.median_s == timing.typical_s
        assert model.max_s == timing.max_reply_s <= timing.least_timeout_s
        assert max(sample_latency(model, rng) for _ in range(5_000)) <= timing.max_reply_s


def test_a_model_refuses_impossible_figures() -> None:
    with pytest.raises(ValueError, match="slow_min_s <= max_s"):
        LatencyModel("x", 0.01, sigma=0.3, slow_probability=0.01, slow_min_s=0.3, max_s=0.2)
    with pytest.raises(ValueError, match="slow_probability"):
        LatencyModel("x", 0.01, sigma=0.3, slow_probability=1.0, slow_min_s=0.1, max_s=0.2)


@asynccontextmanager
async def two_meters(slow_s: float) -> AsyncIterator[tuple[int, int]]:
    """The reference site's grid meter on two ports: one `slow_s` late, one at once."""
    plant = Plant(load_site(SITE))
    meter = build_devices(plant)["grid_meter"]
    slow = EndpointServer([meter], latencies={"grid_meter": fixed(slow_s)})
    quick = EndpointServer([build_devices(plant)["grid_meter"]])
    try:
        yield await slow.start(), await quick.start()
    finally:
        await slow.stop()
        await quick.stop()


async def timed_read(port: int, address: int, count: int, timeout_s: float = 5.0) -> float:
    """[s] from sending one read to its answer, with a fresh pymodbus client."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=timeout_s, retries=0)
    await client.connect()
    try:
        started = time.monotonic()
        reply = await client.read_holding_registers(address, count=count, device_id=1)
        assert not reply.isError() and len(reply.registers) == count
        return time.monotonic() - started
    finally:
        client.close()


async def test_a_slow_device_does_not_hold_up_another_port() -> None:
    async with two_meters(slow_s=0.3) as (slow_port, quick_port):
        slow = asyncio.ensure_future(timed_read(slow_port, SUNSPEC_BASE, 2))
        await asyncio.sleep(0)  # the slow request goes out first
        quick_s = await timed_read(quick_port, SUNSPEC_BASE, 2)
        assert not slow.done()  # answered while the slow one is still working
        slow_s = await slow
        assert slow_s >= 0.3 > quick_s


async def test_a_late_reply_never_answers_the_next_request() -> None:
    """pymodbus's own handler would send the first, late reply under the second request's
    transaction id; each request here keeps its own."""
    async with two_meters(slow_s=0.3) as (slow_port, _):
        client = AsyncModbusTcpClient("127.0.0.1", port=slow_port, timeout=0.1, retries=0)
        await client.connect()
        try:
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(SUNSPEC_BASE + 2, count=4, device_id=1)
            # the next request waits behind the first one's late reply: give it time
            client.ctx.comm_params.timeout_connect = 2.0
            reply = await client.read_holding_registers(SUNSPEC_BASE, count=2, device_id=1)
        finally:
            client.close()
    assert not reply.isError()
    assert reply.registers == list(SUNSPEC_MARKER)


async def test_sim_site_delays_by_default_and_not_when_instant() -> None:
    config = load_site(SITE)
    async with SimSite(config, bind_free_ports=True, tick_s=None) as site:
        assert set(site.latencies) == set(config.devices)
        pv = site.latencies["pv"]
        await timed_read(site.ports["pv"], SUNSPEC_BASE, 2)
        assert pv.replies == 1
    async with SimSite(config, bind_free_ports=True, tick_s=None, instant=True) as site:
        assert site.latencies == {}
        await timed_read(site.ports["pv"], SUNSPEC_BASE, 2)


def test_the_command_line_chooses_instant_or_a_seed() -> None:
    args = parse_args(["--config", str(SITE)])
    assert (args.instant, args.latency_seed) == (False, 0)
    args = parse_args(["--config", str(SITE), "--instant", "--latency-seed", "7"])
    assert (args.instant, args.latency_seed) == (True, 7)
