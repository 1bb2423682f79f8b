"""resilience.memtrace: the opt-in allocation tracing of a running controller."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc

import pytest

from resilience.memtrace import ENV, period_from_environment, trace_forever


def test_the_period_comes_from_the_environment_or_tracing_is_off() -> None:
    assert period_from_environment({}) is None
    assert period_from_environment({ENV: " "}) is None
    assert period_from_environment({ENV: "60"}) == 60.0
    for bad in ("0", "-5", "soon", "inf", "nan"):
        with pytest.raises(ValueError, match=f"{ENV}='{bad}': not a positive number"):
            period_from_environment({ENV: bad})


async def test_a_growing_list_is_reported_by_its_line(caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    hoard: list[bytes] = []
    with caplog.at_level(logging.WARNING, logger="resilience.memtrace"):
        task = asyncio.create_task(trace_forever(0.05, stop, top=3))
        while sum("memtrace: +" in r.getMessage() for r in caplog.records) < 1:
            hoard.append(bytes(4096) + bytes(len(hoard)))  # the line that grows
            await asyncio.sleep(0.005)
        stop.set()
        await task
    assert not tracemalloc.is_tracing()
    lines = [r.getMessage() for r in caplog.records if "memtrace: +" in r.getMessage()]
    assert "test_memtrace.py" in lines[0].split(" <- ")[0]  # the allocating line first
