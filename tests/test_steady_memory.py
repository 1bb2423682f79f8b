"""A steady site's control cycles must not keep the controller's memory growing.

The gateway's goal is an RSS that stops growing (bench/footprint.py, README "Footprint").
These tests run the real controller against the plant in process (tests/inprocess_site.py)
and look at what a cycle leaves behind, not at the RSS (which a test process's other
work moves).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest

from resilience.config import parse_site
from resilience.model import Mode
from tests.inprocess_site import InProcessSite, reference_data

FREE_LIST_MAX = 2000  # CPython's PyTuple_MAXFREELIST: tuples of one size kept for reuse
SIZES = range(1, 20)  # the sizes with a free list (PyTuple_MAXSAVESIZE = 20)


@pytest.fixture
def site() -> Iterator[InProcessSite]:
    """The reference site, with no telemetry sample in the few seconds measured: the
    store frees a batch of samples at once, which leaves that batch's tuples in the free
    list of their size (a high-water mark of the batch, not a fill a cycle)."""
    data = reference_data()
    data["site"]["telemetry_period_s"] = 3600.0
    built = InProcessSite(parse_site(data))
    try:
        yield built
    finally:
        built.close()


def free_tuples(capfd: pytest.CaptureFixture[str]) -> dict[int, int]:
    """CPython's tuple free lists: size -> tuples kept (sys._debugmallocstats, on fd 2)."""
    capfd.readouterr()
    sys._debugmallocstats()
    text = capfd.readouterr().err
    found = re.findall(r"(\d+) free (\d+)-sized PyTupleObjects", text)
    assert found, "sys._debugmallocstats printed no tuple free lists"
    return {int(size): int(count) for count, size in found}


def grown_free_lists(
    site: InProcessSite, cycles: int, capfd: pytest.CaptureFixture[str]
) -> dict[int, int]:
    """How much each tuple free list grew over `cycles` cycles, started empty.

    A tuple built from a generator (`tuple(x for x in ...)`) is allocated at a guessed
    size and resized to its length, so it comes from one free list and goes back to
    another when freed: one such tuple a cycle fills that size's list by one a cycle, up
    to 2000 (bench/footprint.py: four sizes, 0.7 MB in the controller's first minute).
    The lists are drained first (their tuples held until the end), so a list that some
    earlier test filled cannot hide the growth.
    """
    assert site.store.flush(5.0)  # the first cycle's telemetry, freed before, not during
    held = [tuple(range(size)) for size in SIZES for _ in range(FREE_LIST_MAX)]
    before = free_tuples(capfd)
    site.cycles(cycles)
    after = free_tuples(capfd)
    del held
    return {size: after[size] - before[size] for size in SIZES if after[size] > before[size]}


def test_a_steady_grid_connected_cycle_fills_no_tuple_free_list(
    site: InProcessSite, capfd: pytest.CaptureFixture[str]
) -> None:
    site.cycles(100)
    assert site.mode is Mode.GRID_CONNECTED
    grown = grown_free_lists(site, 300, capfd)
    assert all(count < 50 for count in grown.values()), f"size: tuples kept {grown}"



def test_a_steady_island_fills_no_tuple_free_list(
    site: InProcessSite, capfd: pytest.CaptureFixture[str]
) -> None:
    """The plant runs in this process too, so its step must not fill a list either
    (its forming chargers' ids, a 1-tuple from a generator twice a cycle, did)."""
    site.islanded()
    site.seconds(10.0)
    assert site.mode is Mode.ISLANDED
    grown = grown_free_lists(site, 300, capfd)
    assert all(count < 50 for count in grown.values()), f"size: tuples kept {grown}"
    assert site.plant.violations == []
