"""OCPP 2.0.1 sessions: imported only for a site with a 2.0.1 station
(`sessions.session_class`), since the payload classes of each OCPP version stay resident
once imported."""

from __future__ import annotations

from ocpp.v201 import call as call_201
from ocpp.v201 import call_result as result_201
from ocpp.v201.enums import Action as Action201

from resilience.ocpp.sessions import Session2

__all__ = ["V201Session"]


class V201Session(Session2):
    _call = call_201
    _call_result = result_201
    _ocpp_version = "2.0.1"
    _actions = frozenset(a.value for a in Action201)
