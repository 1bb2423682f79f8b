"""Devices that go silent, answer with exception codes, garbled or truncated frames, or values
outside physical range: over Modbus TCP and Modbus RTU (and the V2L line protocol).

Each fault must: make the device *unavailable* (never its last value), raise one
clear alarm naming the device and the cause, log once when it starts and once when
it ends, clear the alarm on recovery, keep the controller cycling, and break no
safety rule on the plant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from firmware_sim.plant import Plant
from resilience.drivers.registers import SUNSPEC_BASE
from resilience.drivers.registers import BidirectionalCharger as CHG
from resilience.drivers.registers import SunSpecMeter as MTR
from resilience.drivers.registers import V2LOutlet as V2L
from resilience.model import BreakerPosition, Mode
from tests.faults.conftest import FaultSite, infos_about, warnings_about

Inject = Callable[[Plant, str], None]


def silence(plant: Plant, device: str) -> None:
    plant.silence(device)


def exception_4(plant: Plant, device: str) -> None:
    plant.exception(device, 4)


def corrupt(plant: Plant, device: str) -> None:
    plant.corrupt(device)


def truncate(plant: Plant, device: str) -> None:
    plant.truncate(device)


def soc_250_pct(plant: Plant, device: str) -> None:
    plant.garbage(device, {CHG.SOC: 2500})


def outlet_soc_250_pct(plant: Plant, device: str) -> None:
    plant.garbage(device, {V2L.SOC: 2500})


def meter_0_hz(plant: Plant, device: str) -> None:
    plant.garbage(device, {MTR.DATA - SUNSPEC_BASE + MTR.HZ: 0})


async def fault_and_recovery(
    site: FaultSite,
    caplog: pytest.LogCaptureFixture,
    device: str,
    inject: Inject,
    words: str,
) -> str:
    """Inject, check the alarm and the unavailable device, clear, check the recovery.

    The simulator answers from the controller's own event loop: on a starved machine (the
    full suite on two cores) a device with a 10 ms timeout can miss reads and even be
    unavailable for a moment before the fault is injected. So the device is awaited
    answering, and only the log from the injection on is judged."""
    caplog.set_level(logging.INFO, logger="resilience")
    await site.mode(Mode.GRID_CONNECTED, 10)
    code = f"device_unavailable:{device}"
    await site.until(
        lambda: site.available(device) and site.alarm(code) is None, 10, f"{device} answering"
    )
    earlier = len(await site.stored_alarms(code))
    caplog.clear()
    inject(site.plant, device)
    message = await site.alarm_raised(code)
    assert device in message and words in message, message
    assert not site.available(device)
    snap = site.status.snapshot
    health = {h.device_id: h for h in snap.health}
    assert not health[device].available and words in health[device].error
    for vehicle in snap.vehicles:
        if vehicle.charger_id == device:  # unavailable, not the last reading
            assert not vehicle.available and vehicle.soc_pct == 0.0 and vehicle.power_w == 0.0
    cycles = site.running.controller.stats.cycles
    await site.until(
        lambda: site.running.controller.stats.cycles > cycles + 20, 10, "20 more cycles"
    )
    site.plant.clear_fault(device)
    await site.alarm_cleared(code)
    assert site.available(device)
    assert len(warnings_about(caplog, f"{device} unavailable")) == 1
    assert len(infos_about(caplog, f"{device} answering again")) == 1
    stored = await site.stored_alarms(code)
    assert len(stored) == earlier + 1 and all(a.cleared_ts is not None for a in stored)
    assert not site.running.task.done()
    site.assert_safe()
    return message


async def test_silent_charger(site: FaultSite, caplog: pytest.LogCaptureFixture) -> None:
    message = await fault_and_recovery(site, caplog, "charger_3", silence, "DeviceTimeout")
    assert "no answer within" in message


async def test_exception_code(site: FaultSite, caplog: pytest.LogCaptureFixture) -> None:
    await fault_and_recovery(
        site, caplog, "charger_3", exception_4, "Modbus exception 4 (DEVICE_FAILURE)"
    )


@pytest.mark.parametrize("inject", [corrupt, truncate], ids=["corrupt", "truncate"])
async def test_garbled_or_truncated_frame(
    site: FaultSite, caplog: pytest.LogCaptureFixture, inject: Inject
) -> None:
    message = await fault_and_recovery(site, caplog, "charger_3", inject, "BadFrame")
    if site.transport == "rtu":
        expected = "CRC mismatch" if inject is corrupt else "truncated reply"
    else:  # TCP has no CRC: the simulated device sends a short frame
        expected = "the reply holds 15 registers"
    assert expected in message


async def test_soc_of_250_pct_is_refused(site: FaultSite, caplog: pytest.LogCaptureFixture) -> None:
    message = await fault_and_recovery(site, caplog, "charger_3", soc_250_pct, "BadReply")
    assert "register SOC" in message and "250 % is outside 0..100 %" in message


async def test_grid_frequency_of_0_hz_is_refused(
    site: FaultSite, caplog: pytest.LogCaptureFixture
) -> None:
    message = await fault_and_recovery(site, caplog, "grid_meter", meter_0_hz, "BadReply")
    assert "0 Hz at 400 V" in message
    # the meter's reading was refused, not believed: the site did not island on it
    assert site.plant.breaker_position is BreakerPosition.CLOSED


@pytest.mark.parametrize(
    ("inject", "words"),
    [
        (silence, "no answer within"),
        (exception_4, "device error 4 (DEVICE_FAILURE)"),
        (corrupt, "checksum mismatch"),
        (truncate, "truncated reply"),
        (outlet_soc_250_pct, "250 % is outside 0..100 %"),
    ],
    ids=["silence", "exception", "corrupt", "truncate", "soc_250"],
)
async def test_line_protocol_meter_faults(
    site: FaultSite, caplog: pytest.LogCaptureFixture, inject: Inject, words: str
) -> None:
    if site.transport != "rtu":
        pytest.skip("the line-protocol V2L meter is on the serial variant of the site")
    await fault_and_recovery(site, caplog, "v2l_2", inject, words)


async def test_silent_grid_former_in_island_is_not_replaced_by_a_second_source(
    site: FaultSite,
) -> None:
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 10)
    (former,) = site.plant.former_ids
    most_formers = [1]
    site.running.controller.on_status(lambda _s: most_formers.append(len(site.plant.former_ids)))
    site.plant.silence(former)
    await site.alarm_raised(f"device_unavailable:{former}")
    cycles = site.running.controller.stats.cycles
    await site.until(lambda: site.running.controller.stats.cycles > cycles + 30, 10, "cycles")
    assert max(most_formers) == 1  # never two voltage sources on one bus
    site.plant.clear_fault(former)
    await site.alarm_cleared(f"device_unavailable:{former}")
    await site.mode(Mode.ISLANDED, 10)
    assert site.plant.bus_live
    site.assert_safe()


async def test_silent_breaker_in_island_keeps_the_island_safe(site: FaultSite) -> None:
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 10)
    site.plant.silence("pcc_breaker")
    await site.alarm_raised("device_unavailable:pcc_breaker")
    site.plant.grid_return()  # the grid comes back while the breaker cannot be read
    # past the return-to-service delay (when a blind controller would close), then 25 cycles
    returned, delay = site.plant.time_s, site.config.grid.return_to_service_s
    await site.until(lambda: site.plant.time_s >= returned + delay, 15, "the return delay")
    cycles = site.running.controller.stats.cycles
    await site.until(lambda: site.running.controller.stats.cycles > cycles + 25, 15, "cycles")
    assert site.plant.breaker_position is BreakerPosition.OPEN  # never closed blind
    site.plant.clear_fault("pcc_breaker")
    await site.mode(Mode.GRID_CONNECTED, 30)
    site.assert_safe()


@pytest.mark.parametrize("stall_s", [0.04, 0.3, 1.5])
async def test_a_stall_of_every_device_leaves_a_healthy_island_as_it_is(
    site: FaultSite, stall_s: float
) -> None:
    """Every device silent at once (a stalled switch or RS-485 gateway), over the real
    transports: unknown is not dead, so nothing in the field is switched or started."""
    await site.mode(Mode.GRID_CONNECTED, 10)
    site.plant.grid_loss()
    await site.mode(Mode.ISLANDED, 10)
    await site.settled(25, 30)
    mark = len(site.plant.log)
    formers = site.plant.former_ids
    for device in site.config.devices:
        site.plant.silence(device)
    start = site.plant.time_s
    await site.until(lambda: site.plant.time_s >= start + stall_s, 10, f"a {stall_s} s stall")
    for device in site.config.devices:
        site.plant.clear_fault(device)
    for device in site.config.devices:
        await site.until(lambda d=device: site.available(d), 20, f"{device} answering")  # type: ignore[misc]
    cycles = site.running.controller.stats.cycles
    await site.until(
        lambda: site.running.controller.stats.cycles > cycles + 25, 10, "25 more cycles"
    )
    assert site.field_actions(mark) == []
    assert site.plant.former_ids == formers
    assert site.status.mode is Mode.ISLANDED
    site.assert_safe()
