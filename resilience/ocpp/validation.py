"""Compiled JSON-schema checks for the OCPP messages that come every second.

The `ocpp` library checks every payload against its JSON schema with `jsonschema`'s
Draft4Validator, inline in the controller's event loop (`service.validate_ocpp_inline`).
For most messages that costs tens of microseconds; a MeterValues or a TransactionEvent
with its sampled values costs about 0.8 ms, and twelve stations that send theirs in the
same moment held the loop, and so the control cycle, for 10-15 ms
(bench/ocpp_v2x.py's jitter). `fastjsonschema` compiles the same schema to Python once
(about 30 ms per schema, here at start-up) and checks such a payload in about 45 us;
only MeterValues is compiled, for the memory a compiled schema takes (`HOT_CALLS`).

Only a payload the compiled check accepts skips the library's own validator: one it
refuses is checked again by the library's, so a station's bad message gets exactly the
library's CALLERROR (FormatViolation, TypeConstraintViolation, ...) as before. The
compiled checks go into the library's own validator cache (`ocpp.messages._validators`,
keyed as `get_validator` keys it), which is all `ocpp.messages` consults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import fastjsonschema
import ocpp.messages
from ocpp.messages import MessageType

__all__ = ["HOT_CALLS", "compile_hot_schemas"]

HOT_CALLS: dict[str, tuple[str, ...]] = {
    # the CALL every station sends every second, with its sampled values. Only it: a
    # compiled schema costs memory (MeterValues about 7 MB of RSS, TransactionEvent 13,
    # SetChargingProfile 5, measured), and the gateway's budget is 70 MB
    "2.1": ("MeterValues",),
    "2.0.1": ("MeterValues",),
    "1.6": ("MeterValues",),
}


class CompiledValidator:
    """What `ocpp.messages._validate_payload` asks of a validator: `validate(payload)`,
    raising jsonschema's ValidationError for a payload that does not fit."""

    def __init__(self, fallback: Any) -> None:
        self.schema = fallback.schema
        self._fallback = fallback
        # use_default=False: a check, never a change (it would fill in the schema's defaults)
        self._check: Callable[[Any], Any] = fastjsonschema.compile(
            fallback.schema, use_default=False
        )

    def validate(self, payload: Any) -> None:
        try:
            self._check(payload)
        except fastjsonschema.JsonSchemaException:
            # the library's own verdict and wording for anything the fast check refuses
            self._fallback.validate(payload)


def compile_hot_schemas(versions: Iterable[str]) -> list[str]:
    """Compile the hot CALLs' schemas of `versions` into the library's cache; returns the
    cache keys compiled (once per process: a compiled one is left as it is)."""
    done: list[str] = []
    for version in sorted(set(versions)):
        for action in HOT_CALLS.get(version, ()):
            validator = ocpp.messages.get_validator(MessageType.Call, action, version)
            if isinstance(validator, CompiledValidator):
                continue
            key = _cache_key(action, version)
            ocpp.messages._validators[key] = CompiledValidator(validator)
            done.append(key)
    return done


def _cache_key(action: str, version: str) -> str:
    """`ocpp.messages.get_validator`'s cache key of a CALL's schema."""
    name = action + ("Request" if version in ("2.0.1", "2.1") else "")
    return f"{name}_{version}"
