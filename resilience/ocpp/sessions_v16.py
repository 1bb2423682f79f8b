"""OCPP 1.6 sessions (its own messages and error code spellings): imported only for a site
with a 1.6 station (`sessions.session_class`), since the payload classes of each OCPP
version stay resident once imported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call_16
from ocpp.v16 import call_result as result_16
from ocpp.v16.enums import Action as Action16

from resilience.ocpp.sessions import Session, on

__all__ = ["V16Session"]


class V16Session(Session):
    _call = call_16
    _call_result = result_16
    _ocpp_version = "1.6"
    _actions = frozenset(a.value for a in Action16)

    _CODES_16: ClassVar[dict[str, str]] = {
        "FormatViolation": "FormationViolation",
        "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    }

    def _code(self, code: str) -> str:
        return self._CODES_16.get(code, code)

    def _frame_code(self, error: OCPPError) -> str:
        return self._code(error.code)  # 1.6 has no RpcFrameworkError

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_transaction = int(datetime.now(UTC).timestamp()) % 1_000_000

    @on("BootNotification")
    def on_boot_notification_16(self, **_: Any) -> Any:
        return result_16.BootNotification(
            current_time=self.link.now_iso(),
            interval=self.link.heartbeat_interval_s,
            status="Accepted",
        )

    @on("Heartbeat")
    def on_heartbeat_16(self, **_: Any) -> Any:
        return result_16.Heartbeat(current_time=self.link.now_iso())

    @on("StatusNotification")
    def on_status_notification_16(self, connector_id: int, status: str, **_: Any) -> Any:
        if connector_id == self.evse_id:
            self._status(status)
        return result_16.StatusNotification()

    @on("MeterValues")
    def on_meter_values_16(
        self, connector_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> Any:
        if connector_id == self.evse_id:
            self._meter(meter_value)
        return result_16.MeterValues()

    @on("StartTransaction")
    def on_start_transaction_16(self, connector_id: int, **_: Any) -> Any:
        self._next_transaction += 1
        if connector_id == self.evse_id:
            self._transaction("Started", str(self._next_transaction))
        return result_16.StartTransaction(
            transaction_id=self._next_transaction, id_tag_info={"status": "Accepted"}
        )

    @on("StopTransaction")
    def on_stop_transaction_16(self, transaction_id: int, **_: Any) -> Any:
        if str(transaction_id) == self.link.state.transaction_id:
            self._transaction("Ended", str(transaction_id))
        return result_16.StopTransaction()

    @on("Authorize")
    def on_authorize_16(self, **_: Any) -> Any:
        return result_16.Authorize(id_tag_info={"status": "Accepted"})

    @on("DataTransfer")
    def on_data_transfer_16(self, **_: Any) -> Any:
        return result_16.DataTransfer(status="UnknownVendorId")
