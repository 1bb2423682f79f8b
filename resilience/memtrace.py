"""Opt-in memory tracing of a running controller: which source lines hold more and more.

The gateway's goal is an RSS that stops growing (bench/footprint.py: growth < 1 MB per
10 minutes). To find what grows, set ``RESILIENCE_TRACEMALLOC=<seconds>`` for `resilience
run` (bench/footprint.py --tracemalloc does): `tracemalloc` then traces every allocation
made from <seconds> after the controller started (the warm-up), takes a first snapshot
then and, every <seconds> after that, logs the call sites whose live allocations grew
most since that first snapshot, on the logger ``resilience.memtrace``, as

    memtrace: +123.4 KiB (+1520 blocks) path.py:12 <- caller.py:34 <- ...

Off by default and never in the control path: tracing costs several MB and a share of
the CPU. It sees only Python's allocator: what SQLite or OpenSSL allocate for themselves
does not show (compare the RSS the bench prints with the total here, and `--regions`).
A tuple kept in one of CPython's free lists is still live for it, at the line that made
it: a line that seems to hold a few thousand small tuples may only have filled a list
(`sys._debugmallocstats` shows the lists; tests/test_steady_memory.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tracemalloc
from collections.abc import Mapping

ENV = "RESILIENCE_TRACEMALLOC"
FRAMES = 4  # call sites as the innermost frames: the allocating line and its callers

log = logging.getLogger("resilience.memtrace")


def period_from_environment(environ: Mapping[str, str] = os.environ) -> float | None:
    """[s] the tracing period ``RESILIENCE_TRACEMALLOC`` asks for; None when unset or empty.
    ValueError names the variable when its value is not a positive number of seconds."""
    text = environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        period_s = float(text)
    except ValueError:
        period_s = 0.0
    if not period_s > 0.0 or period_s == float("inf"):
        raise ValueError(f"{ENV}={text!r}: not a positive number of seconds")
    return period_s


def growth(first: tracemalloc.Snapshot, now: tracemalloc.Snapshot, top: int) -> list[str]:
    """The `top` call sites whose live allocations grew most from `first` to `now`, one
    line each, and a total line."""
    ignore = (
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    )
    stats = now.filter_traces(ignore).compare_to(first.filter_traces(ignore), "traceback")
    total = sum(stat.size_diff for stat in stats)
    lines = [f"memtrace: total {total / 1024:+.1f} KiB traced since the first snapshot"]
    for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        if stat.size_diff <= 0:
            break
        frames = reversed(stat.traceback)  # the allocating line first, then its callers
        where = " <- ".join(f"{frame.filename}:{frame.lineno}" for frame in frames)
        lines.append(
            f"memtrace: {stat.size_diff / 1024:+.1f} KiB ({stat.count_diff:+d} blocks) {where}"
        )
    return lines


async def trace_forever(period_s: float, stop: asyncio.Event, top: int = 10) -> None:
    """After `period_s` (the start-up, untraced: tracing slows every allocation, and the
    devices' first answers must come within their timeouts), trace until `stop` is set
    or the task is cancelled, logging the growth every `period_s`."""
    if await _stopped(stop, period_s):
        return
    tracemalloc.start(FRAMES)
    log.warning("memtrace: tracing allocations (%s=%g): costs memory and CPU", ENV, period_s)
    try:
        first = tracemalloc.take_snapshot()
        while not await _stopped(stop, period_s):
            for line in growth(first, tracemalloc.take_snapshot(), top):
                log.warning("%s", line)
    finally:
        tracemalloc.stop()


async def _stopped(stop: asyncio.Event, wait_s: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), wait_s)
    return stop.is_set()
