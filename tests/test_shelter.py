"""The shelter's headcount as stored: read back exactly, or taken as never counted."""

from __future__ import annotations

import pytest

from resilience.shelter import MAX_PEOPLE, Headcount


def test_a_stored_headcount_reads_back() -> None:
    counted = Headcount(42, 1000.0, "ayse")
    assert Headcount.from_state(counted.as_dict()) == counted
    assert Headcount.from_state(None) is None  # never counted: not 0


@pytest.mark.parametrize(
    "stored",
    [
        {"people": -1, "recorded_ts": 1.0, "by": "x"},
        {"people": MAX_PEOPLE + 1, "recorded_ts": 1.0, "by": "x"},
        {"people": 1.5, "recorded_ts": 1.0, "by": "x"},
        {"people": True, "recorded_ts": 1.0, "by": "x"},
        {"people": 3, "by": "x"},
        "lots",
    ],
)
def test_an_unreadable_stored_headcount_is_not_a_count(stored: object) -> None:
    assert Headcount.from_state(stored) is None
