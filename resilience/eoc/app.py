"""`resilience eoc`'s web view and API: every shelter on one screen, commands with
confirmation. The same stack and roles as a site's API (FastAPI; bearer tokens hashed in
the EOC's own SQLite file, `resilience.auth.TokenStore`; viewer < responder < operator <
admin), served with no file from the Internet (`ui/index.html`: one page, English and
Turkish).

    GET  /                          the table (a page; it asks for a token)
    GET  /api/sites[?district=]     viewer: one line per site (EocDb.SiteView.as_dict)
    GET  /api/sites/{district}/{site}  viewer: the line, the full state, its open alarms
                                    with the site's numbers for them (what ack_alarm
                                    names; null until the raising event arrived), the
                                    last events
    GET  /api/stream                viewer: Server-Sent Events, `sites` messages
                                    {now, connected, full, sites: [lines]}: every line
                                    first (full), then the lines that changed after each
                                    commit or timer (at most every PUSH_INTERVAL_S), and
                                    an empty one every TICK_S (the page's sign of life)
    POST /api/commands              operator: {district, site (null: the district),
                                    command, args, lifetime_s, confirm}; without
                                    "confirm": true the answer is 409 naming the sites it
                                    would reach; with it, 202 and the command's id
    GET  /api/commands/{id}         viewer: each site's answer so far
    GET  /api/audit[?limit=&before_id=]  operator: who asked what, and the outcome

Audited as on a site (`EocDb.record_audit`, the EOC's SQLite file): a sent command
(`accepted`, committed before the 202), and every refused call that changes something
(POST): a role that may not (`forbidden`), input refused (`rejected`: invalid fields, a
command the EOC may not give, a site it does not know) and a broker it could not reach
(`error`); and any call with an expired token (`refused`, at most once a minute per
token, as on a site). A caller without a known token is answered 401 and not audited:
there is no one to name.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import aiomqtt
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from resilience.api.server import AppServer
from resilience.auth import Expired, Principal, TokenStore, TokenUses
from resilience.eoc.db import EocDb, Key
from resilience.eoc.service import EocService, Watch
from resilience.fleet.payloads import EOC_COMMANDS, MAX_COMMAND_LIFETIME_S

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUSH_INTERVAL_S = 0.5
"""[s] At most this often a stream sends changed lines: at 500 sites the rows of many
commits go in one message, not one message per commit."""
TICK_S = 5.0
"""[s] An idle stream still sends this often: the page takes a stream silent for longer
(a half-open connection) for broken and falls back to polling."""


class CommandRequest(BaseModel):
    district: str = Field(min_length=1, max_length=64)
    site: str | None = Field(default=None, min_length=1, max_length=64)
    command: str
    args: dict[str, Any] = {}
    lifetime_s: float = Field(default=300.0, gt=0, le=MAX_COMMAND_LIFETIME_S)
    confirm: bool = False


def create_eoc_app(
    service: EocService, db: EocDb, tokens: TokenStore, *, wall: Callable[[], float] = time.time
) -> FastAPI:
    app = FastAPI(title="resilience EOC", docs_url=None, redoc_url=None)
    streams: weakref.WeakSet[Watch] = weakref.WeakSet()
    app.state.streams = streams  # `EocServer.stop` ends them before the server stops

    uses = TokenUses()  # here only for "an expired token is audited once a minute"

    async def record(
        principal: Principal,
        command: str,
        args: dict[str, Any],
        outcome: str,
        detail: str,
    ) -> None:
        await asyncio.to_thread(
            db.record_audit, wall(), principal.name, principal.role, command, args, outcome, detail
        )

    def need(role: str) -> Callable[[Request], Awaitable[Principal]]:
        async def check(request: Request) -> Principal:
            call = f"{request.method} {request.url.path}"
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise HTTPException(
                    401, "Authorization: a bearer token is required", {"WWW-Authenticate": "Bearer"}
                )
            now = wall()
            found = await asyncio.to_thread(tokens.check, token.strip(), now)
            if isinstance(found, Expired):
                if uses.audit_expired(found.principal.token_id or 0, now):  # as on a site
                    expired = f"token expired at {found.expires_ts:.0f}"
                    await record(found.principal, call, {}, "refused", expired)
                raise HTTPException(401, "Authorization: this token has expired")
            if found is None:
                raise HTTPException(401, "Authorization: unknown or revoked token")
            request.state.principal = found  # the refusals below are audited under its name
            if not found.allows(role):
                detail = f"role: {found.role} may not do this (needs {role} or above)"
                if request.method in MUTATING:
                    await record(found, call, {}, "forbidden", detail)
                raise HTTPException(403, detail)
            return found

        return check

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """Input refused before the handler: said where and why, and audited for a known
        caller's POST, as the site's API does."""
        message = "; ".join(
            f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is not None and request.method in MUTATING:
            await record(principal, f"{request.method} {request.url.path}", {}, "rejected", message)
        return JSONResponse({"detail": message or "invalid request"}, 422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("resilience.eoc").joinpath("ui/index.html").read_text("utf-8")
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/api/sites")
    async def sites(
        district: str | None = None,
        _: Principal = Depends(need("viewer")),  # noqa: B008
    ) -> dict[str, Any]:
        views = await asyncio.to_thread(db.sites, wall(), district)
        return {"sites": [v.as_dict() for v in views], "now": wall()}

    @app.get("/api/sites/{district}/{site}")
    async def site(
        district: str,
        site: str,
        _: Principal = Depends(need("viewer")),  # noqa: B008
    ) -> dict[str, Any]:
        view = await asyncio.to_thread(db.site, district, site, wall())
        if view is None:
            raise HTTPException(404, f"no site {district}/{site}")
        events = await asyncio.to_thread(db.events, district, site)
        numbers = await asyncio.to_thread(db.alarm_ids, district, site)
        open_alarms = [
            {
                "code": str(alarm.get("code")),
                "message": str(alarm.get("message", "")),
                "alarm_id": numbers.get(str(alarm.get("code"))),
            }
            for alarm in (view.state or {}).get("alarms") or []
        ]
        return {
            **view.as_dict(),
            "state": view.state,
            "open_alarms": open_alarms,
            "recent_events": events,
        }

    async def lines(keys: set[Key] | None, full: bool) -> ServerSentEvent:
        now = wall()
        views = await asyncio.to_thread(db.sites, now, None, keys)
        doc = {
            "now": now,
            "connected": service.connected.is_set(),
            "full": full,
            "sites": [v.as_dict() for v in views],
        }
        return ServerSentEvent(event="sites", data=doc)

    @app.get("/api/stream", response_class=EventSourceResponse)
    async def stream(
        _: Principal = Depends(need("viewer")),  # noqa: B008
    ) -> AsyncIterator[ServerSentEvent]:
        loop = asyncio.get_running_loop()
        with service.watch() as changes:  # from before the first read: nothing falls between
            streams.add(changes)
            yield await lines(None, True)
            sent_at = loop.time()
            while True:
                try:
                    async with asyncio.timeout(TICK_S):
                        keys = await changes.take()
                except TimeoutError:
                    keys = set()
                if keys is None:  # the service stopped
                    return
                wait_s = sent_at + PUSH_INTERVAL_S - loop.time()
                if wait_s > 0:  # gather what else changes meanwhile into this message
                    await asyncio.sleep(wait_s)
                    more = changes.drain()
                    if more is None:
                        return
                    keys |= more
                yield await lines(keys, False)
                sent_at = loop.time()

    @app.post("/api/commands", status_code=202)
    async def command(
        body: CommandRequest,
        principal: Principal = Depends(need("operator")),  # noqa: B008
    ) -> Any:
        asked = {
            "district": body.district,
            "site": body.site,
            "args": body.args,
            "lifetime_s": body.lifetime_s,
        }

        async def refuse(status: int, outcome: str, detail: str) -> HTTPException:
            await record(principal, body.command, asked, outcome, detail)
            return HTTPException(status, detail)

        if body.command not in EOC_COMMANDS:
            allowed = ", ".join(sorted(EOC_COMMANDS))
            detail = f"command: {body.command!r} is not one of {allowed}"
            raise await refuse(422, "rejected", detail)
        views = await asyncio.to_thread(db.sites, wall(), body.district)
        targets = [v.site for v in views if body.site is None or v.site == body.site]
        if not targets:
            where = body.district if body.site is None else f"{body.district}/{body.site}"
            raise await refuse(404, "rejected", f"no site known at {where}")
        if not body.confirm:
            what = body.command + "".join(f" {k}={v}" for k, v in sorted(body.args.items()))
            where = (
                f"{len(targets)} site(s) of {body.district}"
                if body.site is None
                else f"{body.district}/{body.site}"
            )
            return JSONResponse({"confirm": f"send {what} to {where}?", "sites": targets}, 409)
        try:
            command_id = await service.send_command(
                body.district, body.site, body.command, body.args, principal.name, body.lifetime_s
            )
        except aiomqtt.MqttError as exc:
            raise await refuse(503, "error", f"broker: {exc}") from None
        except ValueError as exc:  # what the service itself refuses (it checks again)
            raise await refuse(422, "rejected", str(exc)) from None
        sent = f"command {command_id} sent to {len(targets)} site(s): {', '.join(targets)}"
        await record(principal, body.command, asked, "accepted", sent)
        return {"id": command_id, "sites": targets}

    @app.get("/api/commands/{command_id}")
    async def results(
        command_id: str,
        _: Principal = Depends(need("viewer")),  # noqa: B008
    ) -> dict[str, Any]:
        return {"id": command_id, "results": await asyncio.to_thread(db.results, command_id)}

    @app.get("/api/audit")
    async def audit(
        limit: int = Query(default=50, ge=1, le=500),
        before_id: int | None = Query(default=None, ge=1),
        _: Principal = Depends(need("operator")),  # noqa: B008
    ) -> dict[str, Any]:
        rows = await asyncio.to_thread(db.audit, limit=limit, before_id=before_id)
        return {"audit": rows, "next_before_id": rows[-1]["id"] if len(rows) == limit else None}

    return app


class EocServer(AppServer):
    """The EOC's app served: its live streams end first, so stopping does not wait on them."""

    async def stop(self) -> None:
        for listener in list(self.app.state.streams):
            listener.close()
        await super().stop()
