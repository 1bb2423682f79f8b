"""The `/api/v1` routes: reads, commands, tokens, the live stream and the EDXL-HAVE export.

Reads come from the controller's published status (cached bytes, see
`status.py`) or from the SQLite store through `asyncio.to_thread`. Commands go
through `Controller.submit`, which applies the same interlocks as the mode
machine, writes the audit row and answers once it is committed: an API call
can never do what the controller would refuse. The API never calls a driver.

Status codes: 200 done; 201 token created; 401 no or unknown token; 403 the
role may not (both checked before the input is read, see `dispatch.py`); 404
unknown load, vehicle or token (the message names the field); 409 the
controller refused (the message is its reason), or a time that is not in the
allowed window; 422 bad input (the message names the field and says what is
wrong); 503 the controller has not published a status yet, or did not answer
a command in time. The bodies are documented in `schema.py`; 405 and OPTIONS
in `dispatch.py`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator

from resilience.api.dispatch import AuthFirstRoute
from resilience.api.edxl import edxl_have
from resilience.api.schema import ERROR_RESPONSES, R404, R409, R503_COMMAND
from resilience.api.security import ApiContext, audit, context, require
from resilience.api.status import iso
from resilience.api.stream import alarm_json, event_json
from resilience.auth import MAX_LIFETIME_S, NAME_PATTERN, Principal, TokenError
from resilience.auth import Role as RoleName
from resilience.occupancy import Kind, Source
from resilience.shelter import MAX_PEOPLE

COMMAND_TIMEOUT_S = 5.0
MAX_ID = 2**63 - 1
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# a vehicle id may be a number plate, with spaces inside
VEHICLE_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 _.:-]{0,62}[A-Za-z0-9_.:-])?$"
TierName = Literal["life_safety", "critical", "essential", "comfort"]

Ctx = Annotated[ApiContext, Depends(context)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Responder = Annotated[Principal, Depends(require("responder"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]

LoadId = Annotated[str, Path(pattern=ID_PATTERN, description="a load id of the site file")]
FiniteTs = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e11)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CommandAnswer(BaseModel):
    command: str
    outcome: str
    detail: str


class TierBody(_Body):
    tier: TierName


class HeadcountBody(_Body):
    people: int = Field(ge=0, le=MAX_PEOPLE, description="people sheltering here now, as counted")

    @field_validator("people", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        """A JSON number (12, or 12.0: JSON has one number type), not "12" or true."""
        if isinstance(value, str | bool):
            raise ValueError("Input should be a whole number, not text or true/false")
        return value


class RegisterBody(_Body):
    vehicle_id: str = Field(pattern=VEHICLE_PATTERN, description="the donor's id, e.g. its plate")
    connector: str = Field(
        pattern=ID_PATTERN, description="a bidirectional charger or V2L outlet id"
    )
    reserve_soc_pct: float = Field(ge=0, le=100, description="[%] the driver keeps")
    soc_pct: float | None = Field(default=None, ge=0, le=100, description="[%] on arrival")
    capacity_wh: float | None = Field(default=None, ge=1000, le=300_000, description="[Wh]")
    leaving_at: float | None = Field(
        default=None, ge=0, le=1e11, description="[Unix s] when the driver leaves"
    )


class TokenBody(_Body):
    name: str = Field(pattern=NAME_PATTERN)
    role: RoleName
    expires_in_s: int | None = Field(
        default=None, ge=60, le=MAX_LIFETIME_S, description="[s] lifetime; none: until revoked"
    )


class TokenCreated(BaseModel):
    name: str
    role: str
    token: str
    expires_ts: float | None = None


def _refused(status: int, command: str, detail: str, outcome: str = "refused") -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "command": command, "outcome": outcome}, status_code=status
    )


async def _submit(
    ctx: ApiContext, principal: Principal, command: str, args: dict[str, Any]
) -> CommandAnswer | JSONResponse:
    try:
        result = await asyncio.wait_for(
            ctx.controller.submit(command, args, actor=principal.name, role=principal.role),
            COMMAND_TIMEOUT_S,
        )
    except TimeoutError:
        return _refused(503, command, "controller: no answer within 5 s", "error")
    if result.outcome == "accepted":
        return CommandAnswer(command=command, outcome=result.outcome, detail=result.detail)
    if result.outcome == "refused":
        return _refused(409, command, result.detail)
    return _refused(503, command, result.detail, result.outcome)


async def _load_command(
    ctx: Ctx, principal: Operator, command: str, load_id: str
) -> CommandAnswer | JSONResponse:
    """A command on one load by id: 404 (audited) for a load the site does not have."""
    args = {"load_id": load_id}
    if not _known_load(ctx, load_id):
        return await _reject(
            ctx, principal, command, args, 404, f"load_id: unknown load {load_id!r}"
        )
    return await _submit(ctx, principal, command, args)


async def _reject(
    ctx: ApiContext,
    principal: Principal,
    command: str,
    args: dict[str, Any],
    status: int,
    detail: str,
    *,
    field: tuple[str, str] | None = None,
) -> JSONResponse:
    """Input the API itself rejects: audited like any other mutating call, then answered.
    A 422 names the `field` in `errors`, as a validation error does (`schema.ValidationProblem`)."""
    await audit(ctx, principal, command, args, "rejected", detail)
    response = _refused(status, command, detail, "rejected")
    if field is not None:
        body = {
            "detail": detail,
            "errors": [{"loc": list(field), "msg": detail, "type": "value_error"}],
            "command": command,
            "outcome": "rejected",
        }
        response = JSONResponse(body, status_code=status)
    return response


def _status_doc(ctx: ApiContext) -> dict[str, Any]:
    doc = ctx.cache.document()
    if doc is None:
        raise HTTPException(503, "status: the controller has not read the field yet")
    return doc


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query(request: Request) -> None:
    """Refuse query parameters the route does not take: a typo (`?limt=5`) is an error,
    not silently ignored."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _QUERY_NAMES.get(id(route))
    if allowed is None:
        allowed = frozenset(_query_names(route.dependant))
        _QUERY_NAMES[id(route)] = allowed
    unknown = [name for name in request.query_params if name not in allowed]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


router = APIRouter(
    prefix="/api/v1",
    route_class=AuthFirstRoute,  # the token and role are checked before the input is read
    dependencies=[Depends(known_query)],
    responses=ERROR_RESPONSES,
)
RCOMMAND = {**R409, **R503_COMMAND}


# ---------------------------------------------------------------------- reads
@router.get("/me", tags=["auth"], summary="The caller's token name, role and permissions")
async def me(principal: Viewer) -> dict[str, Any]:
    can = {
        "read_details": principal.allows("responder"),
        "planned_island": principal.allows("responder"),
        "register_vehicle": principal.allows("responder"),
        "release_vehicle": principal.allows("responder"),
        "reconnect": principal.allows("operator"),
        "shed_restore": principal.allows("operator"),
        "set_tier": principal.allows("operator"),
        "ack_alarm": principal.allows("operator"),
        "set_headcount": principal.allows("operator"),
        "manage_tokens": principal.allows("admin"),
    }
    return {"name": principal.name, "role": principal.role, "can": can}


@router.get(
    "/status",
    tags=["status"],
    summary="Mode, grid, supply and load, tiers, endurance, vehicles, alarms",
    responses={200: {"content": {"application/json": {}}}},
)
async def status(ctx: Ctx, _: Viewer) -> Response:
    body = ctx.cache.body()
    if body is None:
        raise HTTPException(503, "status: the controller has not read the field yet")
    return Response(body, media_type="application/json")


@router.get("/stream", tags=["status"], summary="Live Server-Sent Events: status, alarms, events")
async def stream(ctx: Ctx, principal: Viewer) -> StreamingResponse:
    return StreamingResponse(
        ctx.hub.subscribe(full=principal.allows("responder")),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/loads", tags=["loads"], summary="Every load: tier, state, power, lock-out")
async def loads(ctx: Ctx, _: Responder) -> dict[str, Any]:
    doc = _status_doc(ctx)
    states = {load["id"]: load for load in doc["loads"]}
    out = []
    for load in ctx.controller.config.loads:
        entry = dict(states.get(load.id, {}))
        entry.update(
            {
                "id": load.id,
                "name": load.name,
                "configured_tier": load.tier.label,
                "panel": load.panel,
                "channel": load.channel,
                "min_on_s": load.min_on_s,
                "min_off_s": load.min_off_s,
            }
        )
        out.append(entry)
    return {"loads": out}


@router.get("/vehicles", tags=["vehicles"], summary="Every charger and V2L outlet and its car")
async def vehicles(ctx: Ctx, _: Responder) -> dict[str, Any]:
    doc = _status_doc(ctx)
    config = ctx.controller.config
    overrides = ctx.controller.overrides
    out = []
    for entry in doc["vehicles"]["list"]:
        item = dict(entry)
        connector = entry["connector"]
        device = config.devices.get(connector)
        item["rating_w"] = device.rating_w if device is not None else None
        item["can_form"] = bool(device and device.can_form)
        configured = config.vehicle_at(connector)
        item["fleet_vehicle"] = configured.id if configured is not None else None
        held = overrides.at(connector)
        by_operator = held.asserted_by is Source.OPERATOR
        item["registered_by"] = held.asserted_actor if by_operator else None
        item["registered_at"] = held.asserted_at if by_operator else None
        item["since_ts"] = held.since
        out.append(item)
    return {"vehicles": out, "energy_above_reserve_wh": doc["vehicles"]["energy_above_reserve_wh"]}


@router.get(
    "/ocpp", tags=["vehicles"], summary="The OCPP stations: link, car, profiles, commands"
)
async def ocpp_stations(ctx: Ctx, _: Responder) -> dict[str, Any]:
    """Each OCPP station of the site file as its central system's driver sees it: whether
    it is connected and heard from, its car, the profiles installed (the dead-man's Idle
    beneath the Dynamic one), the last command's outcome and the round trips."""
    controller = ctx.controller
    stations = []
    for name in controller.config.ocpp_stations:
        slot = controller.slots.get(name)
        status = getattr(slot.driver, "status", None) if slot is not None else None
        if callable(status):
            stations.append(status())
    return {"stations": stations}


@router.get("/events", tags=["events"], summary="Events, newest first, paged by before_id")
async def events(
    ctx: Ctx,
    _: Responder,
    # a list, not `list | None`: an `anyOf` with null gives clients (and schemathesis) a
    # parameter that is either an array or nothing, where the wire only has repeated keys
    kind: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]],
        Query(
            default_factory=list,
            description="keep these kinds (transition, dispatch, device, fault, ...)",
        ),
    ],
    since: Annotated[FiniteTs | None, Query(description="[Unix s] ts >= since")] = None,
    until: Annotated[FiniteTs | None, Query(description="[Unix s] ts < until")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    rows = await asyncio.to_thread(
        ctx.controller.store.events,
        since=since,
        until=until,
        kinds=kind or None,
        limit=limit,
        before_id=before_id,
    )
    return {
        "events": [event_json(e) for e in rows],
        "next_before_id": rows[-1].id if len(rows) == limit else None,
    }


@router.get("/alarms", tags=["alarms"], summary="Alarms, most recently raised first")
async def alarms(
    ctx: Ctx,
    _: Responder,
    active: Annotated[bool, Query(description="only alarms not cleared")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    rows = await asyncio.to_thread(ctx.controller.store.alarms, active_only=active, limit=limit)
    return {"alarms": [alarm_json(a) for a in rows]}


@router.get("/commands", tags=["audit"], summary="The audit trail: who asked what, and the outcome")
async def commands(
    ctx: Ctx,
    _: Operator,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    rows = await asyncio.to_thread(ctx.controller.store.commands, limit=limit, before_id=before_id)
    return {
        "commands": [
            {
                "id": c.id,
                "ts": c.ts,
                "actor": c.actor,
                "role": c.role,
                "command": c.command,
                "args": c.args,
                "outcome": c.outcome,
                "detail": c.detail,
                "count": c.count,  # refusals are coalesced: repeats within a minute
                "last_ts": c.last_ts,
            }
            for c in rows
        ],
        "next_before_id": rows[-1].id if len(rows) == limit else None,
    }


@router.get(
    "/export/edxl-have",
    tags=["export"],
    summary="The site's state for emergency services, as EDXL-HAVE 2.0 XML",
    responses={200: {"content": {"application/xml": {}}}},
)
async def export_edxl_have(ctx: Ctx, _: Responder) -> Response:
    doc = _status_doc(ctx)
    xml = edxl_have(doc, iso(ctx.controller.wall()))
    return Response(xml, media_type="application/xml")


# ---------------------------------------------------------------------- commands
@router.post(
    "/commands/planned-island",
    tags=["commands"],
    summary="Island on purpose (storm warning): ramp the import down, then open the PCC",
    responses=RCOMMAND,
    response_model=CommandAnswer,
)
async def planned_island(ctx: Ctx, principal: Responder) -> CommandAnswer | JSONResponse:
    return await _submit(ctx, principal, "planned_island", {})


@router.post(
    "/commands/reconnect",
    tags=["commands"],
    summary="Reconnect once the grid is healthy for the return-to-service delay",
    responses=RCOMMAND,
    response_model=CommandAnswer,
)
async def reconnect(ctx: Ctx, principal: Operator) -> CommandAnswer | JSONResponse:
    return await _submit(ctx, principal, "reconnect", {})


def _known_load(ctx: ApiContext, load_id: str) -> bool:
    return any(load.id == load_id for load in ctx.controller.config.loads)


@router.post(
    "/loads/{load_id}/shed",
    tags=["loads"],
    summary="Switch a load off and keep it off",
    responses={**R404, **RCOMMAND},
    response_model=CommandAnswer,
)
async def shed_load(ctx: Ctx, principal: Operator, load_id: LoadId) -> CommandAnswer | JSONResponse:
    return await _load_command(ctx, principal, "shed_load", load_id)


@router.post(
    "/loads/{load_id}/restore",
    tags=["loads"],
    summary="Let the controller switch a shed load back on when supply allows",
    responses={**R404, **RCOMMAND},
    response_model=CommandAnswer,
)
async def restore_load(
    ctx: Ctx, principal: Operator, load_id: LoadId
) -> CommandAnswer | JSONResponse:
    return await _load_command(ctx, principal, "restore_load", load_id)


@router.post(
    "/loads/{load_id}/keep-on",
    tags=["loads"],
    summary="Keep a load on against the endurance policy until the grid returns",
    description=(
        "The endurance policy sheds loads to make the cars' energy last (see the README)."
        " This keeps one on anyway, and every higher-priority load on its circuit with it"
        " (shed order); the power balance still sheds it if the island cannot carry it."
        " Audited; shown on the tablet; undone when the site reconnects to the grid."
    ),
    responses={**R404, **RCOMMAND},
    response_model=CommandAnswer,
)
async def keep_load_on(
    ctx: Ctx, principal: Operator, load_id: LoadId
) -> CommandAnswer | JSONResponse:
    return await _load_command(ctx, principal, "keep_load_on", load_id)


@router.post(
    "/loads/{load_id}/follow-policy",
    tags=["loads"],
    summary="Let the endurance policy decide for a load kept on again",
    responses={**R404, **RCOMMAND},
    response_model=CommandAnswer,
)
async def follow_policy(
    ctx: Ctx, principal: Operator, load_id: LoadId
) -> CommandAnswer | JSONResponse:
    return await _load_command(ctx, principal, "follow_policy", load_id)


@router.put(
    "/loads/{load_id}/tier",
    tags=["loads"],
    summary="Move a load to another tier",
    responses={**R404, **RCOMMAND},
    response_model=CommandAnswer,
)
async def set_tier(
    ctx: Ctx, principal: Operator, load_id: LoadId, body: TierBody
) -> CommandAnswer | JSONResponse:
    args = {"load_id": load_id, "tier": body.tier}
    if not _known_load(ctx, load_id):
        return await _reject(
            ctx, principal, "set_tier", args, 404, f"load_id: unknown load {load_id!r}"
        )
    return await _submit(ctx, principal, "set_tier", args)


@router.put(
    "/shelter/headcount",
    tags=["shelter"],
    summary="Record how many people are sheltering here (the EOC reads it as occupancy)",
    responses=R503_COMMAND,
    response_model=CommandAnswer,
)
async def set_headcount(
    ctx: Ctx, principal: Operator, body: HeadcountBody
) -> CommandAnswer | JSONResponse:
    try:
        result = await asyncio.wait_for(
            ctx.controller.record_headcount(
                body.people, actor=principal.name, role=principal.role
            ),
            COMMAND_TIMEOUT_S,
        )
    except TimeoutError:
        return _refused(503, "set_headcount", "store: no answer within 5 s", "error")
    if result.outcome != "accepted":
        return _refused(409, "set_headcount", result.detail, result.outcome)
    return CommandAnswer(command="set_headcount", outcome=result.outcome, detail=result.detail)


@router.post(
    "/vehicles",
    tags=["vehicles"],
    summary="Register a donor vehicle that arrived at a charger or V2L outlet",
    responses=RCOMMAND,
    response_model=CommandAnswer,
)
async def register_vehicle(
    ctx: Ctx, principal: Responder, body: RegisterBody
) -> CommandAnswer | JSONResponse:
    args = body.model_dump(exclude_none=True)
    config = ctx.controller.config
    if body.connector not in config.chargers and body.connector not in config.outlets:
        known = ", ".join(sorted([*config.chargers, *config.outlets]))
        detail = f"connector: unknown charger or outlet {body.connector!r} (known: {known})"
        return await _reject(
            ctx, principal, "register_vehicle", args, 422, detail, field=("body", "connector")
        )
    now = ctx.controller.wall()
    if body.leaving_at is not None and not now < body.leaving_at <= now + 30 * 86400:
        # a conflict with the controller's clock, not a malformed body: 409
        detail = "leaving_at: must be in the future and within 30 days (Unix seconds)"
        return await _reject(ctx, principal, "register_vehicle", args, 409, detail)
    return await _submit(ctx, principal, "register_vehicle", args)


@router.post(
    "/vehicles/{vehicle_id}/release",
    tags=["vehicles"],
    summary="Release a donor or fleet car: it gives nothing until unplugged",
    responses={**R404, **RCOMMAND},
    response_model=CommandAnswer,
)
async def release_vehicle(
    ctx: Ctx,
    principal: Responder,
    vehicle_id: Annotated[str, Path(pattern=VEHICLE_PATTERN)],
) -> CommandAnswer | JSONResponse:
    args = {"vehicle_id": vehicle_id}
    held = ctx.controller.overrides.holding(vehicle_id)
    if held is None or held.kind is Kind.RELEASED:
        detail = (
            f"vehicle_id: no registered donor vehicle {vehicle_id!r}"
            if held is None
            else f"vehicle_id: {vehicle_id!r} at {held.connector} is already released"
        )
        return await _reject(ctx, principal, "release_vehicle", args, 404, detail)
    return await _submit(ctx, principal, "release_vehicle", args)


@router.post(
    "/alarms/{alarm_id}/ack",
    tags=["alarms"],
    summary="Acknowledge an alarm",
    responses=RCOMMAND,
    response_model=CommandAnswer,
)
async def ack_alarm(
    ctx: Ctx,
    principal: Operator,
    alarm_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> CommandAnswer | JSONResponse:
    try:
        result = await asyncio.wait_for(
            ctx.controller.acknowledge_alarm(alarm_id, actor=principal.name, role=principal.role),
            COMMAND_TIMEOUT_S,
        )
    except TimeoutError:
        return _refused(503, "ack_alarm", "store: no answer within 5 s", "error")
    if result.outcome != "accepted":
        return _refused(409, "ack_alarm", result.detail, result.outcome)
    ctx.hub.alarms_changed()
    return CommandAnswer(command="ack_alarm", outcome=result.outcome, detail=result.detail)


# ---------------------------------------------------------------------- tokens
@router.get("/tokens", tags=["tokens"], summary="Live tokens (names and roles, never the tokens)")
async def list_tokens(ctx: Ctx, _: Admin) -> dict[str, Any]:
    rows = await asyncio.to_thread(ctx.tokens.list)
    return {
        "tokens": [
            {
                "name": t.name,
                "role": t.role,
                "created_ts": t.created_ts,
                "created_by": t.created_by,
                "expires_ts": t.expires_ts,
                "last_used_ts": t.last_used_ts,
            }
            for t in rows
        ]
    }


@router.post(
    "/tokens",
    tags=["tokens"],
    status_code=201,
    summary="Create a token; it is shown once, in this answer",
    responses=R409,
    response_model=TokenCreated,
)
async def create_token(ctx: Ctx, principal: Admin, body: TokenBody) -> TokenCreated | JSONResponse:
    args: dict[str, Any] = {"name": body.name, "role": body.role}
    if body.expires_in_s is not None:
        args["expires_in_s"] = body.expires_in_s
    now = ctx.controller.wall()
    try:
        token = await asyncio.to_thread(
            ctx.tokens.create,
            body.name,
            body.role,
            by=principal.name,
            now=now,
            expires_s=body.expires_in_s,
        )
    except TokenError as exc:
        await audit(ctx, principal, "token_create", args, "refused", str(exc))
        return _refused(409, "token_create", str(exc))
    await audit(ctx, principal, "token_create", args, "accepted", f"{body.role} token {body.name}")
    expires = None if body.expires_in_s is None else now + body.expires_in_s
    return TokenCreated(name=body.name, role=body.role, token=token, expires_ts=expires)


@router.delete(
    "/tokens/{name}",
    tags=["tokens"],
    summary="Revoke a token by name; it stops working at once",
    responses={**R404, **R409},
    response_model=CommandAnswer,
)
async def revoke_token(
    ctx: Ctx, principal: Admin, name: Annotated[str, Path(pattern=NAME_PATTERN)]
) -> CommandAnswer | JSONResponse:
    args = {"name": name}
    if name == principal.name:
        detail = "name: an admin cannot revoke the token it is using (use another admin token)"
        await audit(ctx, principal, "token_revoke", args, "refused", detail)
        return _refused(409, "token_revoke", detail)
    revoked = await asyncio.to_thread(ctx.tokens.revoke, name, by=principal.name)
    if not revoked:
        return await _reject(
            ctx, principal, "token_revoke", args, 404, f"name: no live token named {name!r}"
        )
    await audit(ctx, principal, "token_revoke", args, "accepted", f"token {name} revoked")
    return CommandAnswer(command="token_revoke", outcome="accepted", detail=f"token {name} revoked")
