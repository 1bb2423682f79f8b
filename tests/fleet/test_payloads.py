"""The city layer's pure parts: what an EOC may acknowledge, acknowledgements, change."""

from __future__ import annotations

import pytest

from resilience.fleet import payloads


def test_covered_stops_at_a_gap_and_jumps_the_floor() -> None:
    assert payloads.covered(0, 1, {1, 2, 4}) == (2, {4})
    assert payloads.covered(2, 1, {3, 4}) == (4, set())
    # rows below the sender's floor are gone for good (dropped or acknowledged): no waiting
    assert payloads.covered(0, 10, {10, 11}) == (11, set())
    assert payloads.covered(5, 1, {3, 4}) == (5, set())  # old duplicates change nothing


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"nope", "not JSON"),
        (b'{"seq": "3"}', "integer"),
        (b'{"seq": -1}', "integer"),
        (b'{"seq": 3, "schema": 2}', "schema"),
    ],
)
def test_a_bad_acknowledgement_says_why(raw: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        payloads.parse_ack(raw)


def test_a_good_acknowledgement() -> None:
    assert payloads.parse_ack(b'{"schema": 1, "seq": 42}') == 42


def test_timestamps_alone_are_no_change() -> None:
    state = {"mode": "islanded", "updated_ts": 1.0}
    assert not payloads.changed(state, {**state, "updated_ts": 2.0})
    assert payloads.changed(state, {**state, "mode": "emergency"})
    assert payloads.changed(None, state)


def test_donors_needed_is_what_the_protected_tiers_lack() -> None:
    doc = {
        "endurance_basis": {
            "tiers": ["life_safety", "critical"],
            "draw_w": 2000.0,
            "energy_above_reserve_wh": 30000,
        }
    }
    targets = {"life_safety": 72.0, "critical": 24.0, "essential": 8.0}
    assert payloads.donors_needed_kwh(doc, targets) == 114.0  # 72 h x 2 kW - 30 kWh
    doc["endurance_basis"]["energy_above_reserve_wh"] = 200000
    assert payloads.donors_needed_kwh(doc, targets) == 0.0
