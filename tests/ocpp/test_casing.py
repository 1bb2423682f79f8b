"""resilience.ocpp.casing returns exactly what the `ocpp` library's conversions return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ocpp
import pytest
from ocpp.charge_point import camel_to_snake_case as library_to_snake
from ocpp.charge_point import serialize_as_dict as library_serialize
from ocpp.charge_point import snake_to_camel_case as library_to_camel
from ocpp.v16 import call as call_16
from ocpp.v16 import datatypes as types_16
from ocpp.v16 import enums as enums_16
from ocpp.v21 import call as call_21
from ocpp.v21 import call_result as result_21
from ocpp.v21 import datatypes as types_21
from ocpp.v21 import enums as enums_21

from resilience.ocpp import casing

SCHEMAS = Path(ocpp.__file__).parent


def _names(schema: Any, into: set[str]) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                into.update(value)
            _names(value, into)
    elif isinstance(schema, list):
        for value in schema:
            _names(value, into)


def _schema_names() -> set[str]:
    names: set[str] = set()
    for path in SCHEMAS.glob("v*/schemas/*.json"):
        _names(json.loads(path.read_text(encoding="utf-8")), names)
    return names


NAMES = sorted(_schema_names())


def test_every_schema_property_name_converts_as_the_library_does() -> None:
    assert len(NAMES) > 300  # the three versions' schemas were found
    camel = {name: None for name in NAMES}
    snake = library_to_snake(camel)
    assert casing.camel_to_snake_case(camel) == snake
    assert list(casing.camel_to_snake_case(camel)) == list(snake)
    back = library_to_camel(snake)
    assert list(casing.snake_to_camel_case(snake)) == list(back)
    # and twice (the memoised path) the same again
    assert list(casing.camel_to_snake_case(camel)) == list(snake)
    assert list(casing.snake_to_camel_case(snake)) == list(back)


def _profile() -> call_21.SetChargingProfile:
    period = types_21.ChargingSchedulePeriodType(
        start_period=0,
        setpoint=-7400.0,
        operation_mode=enums_21.OperationModeEnumType.central_setpoint,
        v2x_freq_watt_curve=[
            types_21.V2XFreqWattPointType(frequency=49.8, power=-7400.0),
            types_21.V2XFreqWattPointType(frequency=50.2, power=0.0),
        ],
    )
    schedule = types_21.ChargingScheduleType(
        id=3,
        charging_rate_unit=enums_21.ChargingRateUnitEnumType.w,
        charging_schedule_period=[period],
    )
    profile = types_21.ChargingProfileType(
        id=7,
        stack_level=1,
        charging_profile_purpose=enums_21.ChargingProfilePurposeEnumType.tx_profile,
        charging_profile_kind=enums_21.ChargingProfileKindEnumType.dynamic,
        charging_schedule=[schedule],
        max_offline_duration=5,
    )
    return call_21.SetChargingProfile(evse_id=1, charging_profile=profile)


PAYLOADS: list[Any] = [
    _profile(),
    call_21.MeterValues(
        evse_id=1,
        meter_value=[
            types_21.MeterValueType(
                timestamp="2026-01-20T00:40:00Z",
                sampled_value=[
                    types_21.SampledValueType(value=-7380.5, measurand="Power.Active.Import"),
                    {"value": 61.2, "measurand": "SoC"},  # a dict where a dataclass may be
                ],
            )
        ],
        custom_data={"vendorId": "x", "nested": {"a": [1, (2, 3)]}},
    ),
    result_21.BootNotification(
        current_time="2026-01-20T00:40:00Z",
        interval=10,
        status=enums_21.RegistrationStatusEnumType.accepted,
    ),
    call_16.MeterValues(
        connector_id=1,
        meter_value=[
            types_16.MeterValue(
                timestamp="2026-01-20T00:40:00Z",
                sampled_value=[
                    types_16.SampledValue(value="61", measurand=enums_16.Measurand.soc),
                ],
            )
        ],
    ),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__qualname__)
def test_payloads_serialise_as_the_library_does(payload: Any) -> None:
    ours, theirs = casing.serialize_as_dict(payload), library_serialize(payload)
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # same key order, same types
    assert casing.snake_to_camel_case(ours) == library_to_camel(theirs)
    camel = library_to_camel(theirs)
    assert json.dumps(casing.camel_to_snake_case(camel)) == json.dumps(library_to_snake(camel))


def test_serialised_payload_shares_no_mutable_value() -> None:
    payload = PAYLOADS[1]
    ours = casing.serialize_as_dict(payload)
    ours["custom_data"]["nested"]["a"].append(4)
    assert payload.custom_data["nested"]["a"] == [1, (2, 3)]


def test_not_a_dataclass_is_refused() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        casing.serialize_as_dict({"a": 1})
