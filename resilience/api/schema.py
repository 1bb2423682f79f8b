"""What the OpenAPI schema says beyond what FastAPI derives: the error bodies and the site's ids.

Every error answer of the API is a JSON object with a `detail` string that names the
field or the reason (`Problem`). Validation errors (422) add `errors`, one entry per
problem (`ValidationProblem`), instead of FastAPI's default body where `detail` is an
array. Commands refused or rejected (404, 409, 503 of a command) add the command's
name and its outcome, as the audit trail records them (`Refusal`). `ERROR_RESPONSES`
documents them for every route of the API; routes add their own 404/409/503.

`site_openapi` puts the site file's ids into the schema: the load ids a path takes
and the connectors a vehicle can be registered at are enumerated, so a client (or a
schema-driven test) knows which values exist; any other value is answered 404 (a
load) or 422 (a connector).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from resilience.config import SiteConfig

__all__ = [
    "ERROR_RESPONSES",
    "R404",
    "R409",
    "R503_COMMAND",
    "FieldError",
    "Problem",
    "Refusal",
    "ValidationProblem",
    "site_openapi",
]


class Problem(BaseModel):
    """Every error answer."""

    detail: str = Field(description="where and why, e.g. `load_id: unknown load 'x'`")


class FieldError(BaseModel):
    loc: list[str] = Field(description='where: ["body", "reserve_soc_pct"], ["query", "limit"]')
    msg: str
    type: str = Field(description="the kind of error, e.g. missing, extra_forbidden")


class ValidationProblem(Problem):
    """A 422: `detail` sums the problems up, `errors` lists them one by one."""

    errors: list[FieldError]
    command: str | None = Field(default=None, description="the command, when it was audited")
    outcome: str | None = Field(default=None, description="`rejected`, when it was audited")


class Refusal(Problem):
    """A command that was not carried out; the audit trail has the same outcome."""

    command: str
    outcome: str = Field(
        description="`refused` (the controller or the token store said no), `rejected`"
        " (the API did: unknown id, bad time), or the controller's error"
    )


_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the body could not be read"},
    401: {
        "model": Problem,
        "description": "no token, or an unknown or revoked one (checked before the input)",
        "headers": _WWW_AUTHENTICATE,
    },
    403: {
        "model": Problem,
        "description": "this token's role may not do this; `detail` says which role may",
    },
    422: {
        "model": ValidationProblem,
        "description": "bad input (body, path or query, or an unknown query parameter)",
    },
    503: {"model": Problem, "description": "the controller has not published a status yet"},
}
R404: dict[int | str, dict[str, Any]] = {
    404: {"model": Refusal, "description": "unknown id; `detail` names the field"}
}
R409: dict[int | str, dict[str, Any]] = {
    409: {"model": Refusal, "description": "refused; `detail` says why"}
}
R503_COMMAND: dict[int | str, dict[str, Any]] = {
    503: {"model": Refusal, "description": "the controller did not answer in time"}
}


def site_openapi(app: FastAPI, config: SiteConfig) -> Callable[[], dict[str, Any]]:
    """`app.openapi` with the site's load ids and connectors enumerated (built once)."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            enumerate_site_ids(default(), config)
        assert app.openapi_schema is not None
        return app.openapi_schema

    return openapi


def enumerate_site_ids(schema: dict[str, Any], config: SiteConfig) -> None:
    """Add `enum` to the `load_id` path parameters and to `RegisterBody.connector` (in place).
    Ids the parameter's pattern refuses are left out: no request could name them."""
    loads = [load.id for load in config.loads]
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "load_id":
                    _add_enum(parameter["schema"], loads)
    body = schema.get("components", {}).get("schemas", {}).get("RegisterBody")
    if body is not None:
        _add_enum(body["properties"]["connector"], [*config.chargers, *config.outlets])


def _add_enum(schema: dict[str, Any], values: list[str]) -> None:
    pattern = schema.get("pattern")
    fitting = sorted(v for v in values if pattern is None or re.search(pattern, v))
    if fitting:
        schema["enum"] = fitting
