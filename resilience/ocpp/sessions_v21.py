"""OCPP 2.1 sessions (V2X: dynamic schedules, DER alarms): imported only for a site with a
2.1 station (`sessions.session_class`), since the payload classes of each OCPP version
stay resident once imported."""

from __future__ import annotations

from typing import Any

from ocpp.v21 import call as call_21
from ocpp.v21 import call_result as result_21
from ocpp.v21.enums import Action as Action21

from resilience.ocpp.sessions import Session2, on

__all__ = ["V21Session"]


class V21Session(Session2):
    _call = call_21
    _call_result = result_21
    _ocpp_version = "2.1"
    _actions = frozenset(a.value for a in Action21)
    dynamic_schedules = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule_update: dict[str, Any] | None = None  # what PullDynamicSchedule gets

    @on("PullDynamicScheduleUpdate")
    def on_pull_dynamic_schedule_update(self, charging_profile_id: int, **_: Any) -> Any:
        if self.schedule_update is None:
            return result_21.PullDynamicScheduleUpdate(status="Rejected")
        return result_21.PullDynamicScheduleUpdate(
            status="Accepted", schedule_update=self.schedule_update
        )

    @on("NotifyDERAlarm")
    def on_notify_der_alarm(self, **_: Any) -> Any:
        return result_21.NotifyDERAlarm()
