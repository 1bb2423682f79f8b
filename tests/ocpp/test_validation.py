"""The compiled checks of OCPP's hot schemas (resilience/ocpp/validation.py) give the
`ocpp` library's own verdict: what it accepts passes, what it refuses fails with its
own error and wording."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import ocpp.messages
import pytest
from ocpp.exceptions import OCPPError
from ocpp.messages import Call

from resilience.ocpp.validation import CompiledValidator, compile_hot_schemas

SAMPLE = {"value": 1.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}
GOOD = {
    "evseId": 1,
    "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [SAMPLE] * 6}],
}


def bad(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(GOOD)
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


PAYLOADS = [
    GOOD,
    bad(("evseId",), "1"),  # type
    bad(("surprise",), 1),  # additionalProperties
    {"meterValue": GOOD["meterValue"]},  # required
    bad(("meterValue", 0, "sampledValue", 0, "measurand"), "Power.Bogus"),  # enum
    bad(("meterValue",), []),  # minItems
    bad(("meterValue", 0, "sampledValue", 0, "unitOfMeasure", "unit"), "W" * 21),  # maxLength
]


def verdict(payload: dict[str, Any]) -> tuple[str, str] | None:
    call = Call(unique_id="1", action="MeterValues", payload=copy.deepcopy(payload))
    try:
        ocpp.messages._validate_payload(call, "2.1")
    except OCPPError as exc:
        return type(exc).__name__, str(exc.details)
    return None


@pytest.fixture
def library_cache() -> Iterator[None]:
    saved = dict(ocpp.messages._validators)
    try:
        yield
    finally:
        ocpp.messages._validators.clear()
        ocpp.messages._validators.update(saved)


def test_the_compiled_check_gives_the_librarys_verdict(library_cache: None) -> None:
    ocpp.messages._validators.pop("MeterValuesRequest_2.1", None)
    expected = [verdict(p) for p in PAYLOADS]
    assert expected[0] is None and all(v is not None for v in expected[1:])
    assert "MeterValuesRequest_2.1" in compile_hot_schemas(["2.1"])
    validator = ocpp.messages.get_validator(2, "MeterValues", "2.1")
    assert isinstance(validator, CompiledValidator)
    assert [verdict(p) for p in PAYLOADS] == expected
    payload = copy.deepcopy(GOOD)
    validator.validate(payload)
    assert payload == GOOD  # a check, never a change (no schema defaults filled in)
    assert compile_hot_schemas(["2.1"]) == []  # once per process


def test_each_version_compiles_its_hot_schemas(library_cache: None) -> None:
    for key in ("MeterValuesRequest_2.0.1", "MeterValues_1.6"):
        ocpp.messages._validators.pop(key, None)
    compiled = compile_hot_schemas(["2.0.1", "1.6"])
    assert {"MeterValuesRequest_2.0.1", "MeterValues_1.6"} <= set(compiled)
    for key in compiled:
        assert isinstance(ocpp.messages._validators[key], CompiledValidator)
