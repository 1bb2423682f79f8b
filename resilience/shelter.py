"""The shelter's headcount: how many people the site's operator says are sheltering here.

The controller does not count people; an operator does, and says so on the tablet or the
API (`PUT /api/v1/shelter/headcount`, role operator). The figure is what the city's EOC
reads as the shelter's occupancy (issue 15: "occupancy if known"), so it carries who gave
it and when: a count from yesterday morning is not today's. Never entered: None, shown as
"not counted", published as null, never as 0.

Stored in the store's state table (key `headcount`) together with its audit row, in one
transaction (`Store.record_headcount`), so it survives a restart and is never reported
recorded before it is on disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("resilience.shelter")

MAX_PEOPLE = 100_000
"""A bound on input, not a capacity: a stadium holds fewer."""
STATE_KEY = "headcount"


@dataclass(frozen=True)
class Headcount:
    people: int
    recorded_ts: float  # [s, Unix] when the operator recorded it
    by: str  # the token's name

    def as_dict(self) -> dict[str, Any]:
        return {"people": self.people, "recorded_ts": self.recorded_ts, "by": self.by}

    @classmethod
    def from_state(cls, value: Any) -> Headcount | None:
        """The stored headcount, or None when never entered. A stored value that does not
        read back (a file edited by hand) is logged and taken as never entered: an
        unknown count is not a count."""
        if value is None:
            return None
        try:
            people, ts, by = value["people"], value["recorded_ts"], value["by"]
            if isinstance(people, bool) or not isinstance(people, int):
                raise TypeError("people is not a whole number")
            if not 0 <= people <= MAX_PEOPLE:
                raise ValueError(f"people {people} is not within 0..{MAX_PEOPLE}")
            return cls(people, float(ts), str(by))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "store: the stored headcount %r is unreadable (%s): not counted", value, exc
            )
            return None
