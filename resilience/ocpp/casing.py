"""The `ocpp` library's payload conversions, with the same results at a fraction of the cost.

Every OCPP-J message goes through three conversions in `ocpp.charge_point`: a received
payload's keys from camelCase to snake_case (two regular-expression substitutions per
key, every message), a dataclass payload to a dict (`dataclasses.asdict`, which
deep-copies every value), and a dict's keys back to camelCase (a dozen string
replacements per key). On the controller they were a third of the cost of handling a
station's MeterValues; in a drill on the virtual clock, a fifth of the whole drill.

The functions here return exactly what the library's do (tests/ocpp/test_casing.py
compares them on every property name of the library's JSON schemas and on nested
payloads):

- the key conversions are the library's own, applied to one key and remembered per key
  (a pure function of a string; the set of keys is the schemas', a few hundred);
- `serialize_as_dict` walks the dataclass's fields as `asdict` does, without deep-copying
  the immutable values a payload holds (str, int, float, bool, None, enums), which is
  all the deep copy did for them; anything else is still deep-copied.
"""

from __future__ import annotations

import copy
import enum
import functools
from dataclasses import fields, is_dataclass
from typing import Any

from ocpp import charge_point as library

__all__ = ["camel_to_snake_case", "serialize_as_dict", "snake_to_camel_case"]

_IMMUTABLE = (str, int, float, bool, type(None), enum.Enum)
# the library's functions, held here so that a drill that swaps the library's names
# for these (firmware_sim.ocpp_inprocess) still converts each new key the library's way
_library_to_snake = library.camel_to_snake_case
_library_to_camel = library.snake_to_camel_case


@functools.cache
def _snake_key(key: str) -> str:
    converted: dict[str, Any] = _library_to_snake({key: None})
    return next(iter(converted))


@functools.cache
def _camel_key(key: str) -> str:
    converted: dict[str, Any] = _library_to_camel({key: None})
    return next(iter(converted))


def camel_to_snake_case(data: Any) -> Any:
    """`ocpp.charge_point.camel_to_snake_case`: every dict key, at any depth, to snake_case."""
    if isinstance(data, dict):
        return {_snake_key(key): camel_to_snake_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [camel_to_snake_case(value) for value in data]
    return data


def snake_to_camel_case(data: Any) -> Any:
    """`ocpp.charge_point.snake_to_camel_case`: every dict key, at any depth, to camelCase."""
    if isinstance(data, dict):
        return {_camel_key(key): snake_to_camel_case(value) for key, value in data.items()}
    if isinstance(data, list):
        return [snake_to_camel_case(value) for value in data]
    return data


_ATOMIC = frozenset({str, int, float, bool, type(None)})
_FIELDS: dict[type, tuple[str, ...]] = {}
"""Field names per dataclass type, in order (what `dataclasses.fields` gives, remembered)."""


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls))
        _FIELDS[cls] = names
    return names


def _plain(value: Any) -> Any:
    cls = type(value)
    if cls in _ATOMIC:
        return value
    if cls is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    if cls is list:
        return [_plain(item) for item in value]
    if cls in _FIELDS or (is_dataclass(value) and not isinstance(value, type)):
        return {name: _plain(getattr(value, name)) for name in _field_names(cls)}
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, list):
        return cls(_plain(item) for item in value)
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):  # a named tuple, as asdict rebuilds one
            return cls(*[_plain(item) for item in value])
        return cls(_plain(item) for item in value)
    if isinstance(value, dict):
        return cls((_plain(k), _plain(v)) for k, v in value.items())
    return copy.deepcopy(value)


def serialize_as_dict(payload: Any) -> dict[str, Any]:
    """`ocpp.charge_point.serialize_as_dict`: a payload dataclass as a dict, recursively."""
    if not (is_dataclass(payload) and not isinstance(payload, type)):
        raise TypeError(f"serialize_as_dict() takes a dataclass instance, not {payload!r}")
    result: dict[str, Any] = _plain(payload)
    return result
