"""Bearer-token authentication and role checks for the API routes.

`authorize(request, role)` reads `Authorization: Bearer TOKEN`, looks the token
up in the site's token table (per request, no cache: a token revoked from the
command line stops working at once), and answers 401 for a missing, unknown or
expired token (an expired one is audited, at most once a minute per token), 403 for a
role that may not do this. Each token's last use is noted in memory and written at
most once a minute (`TokenUses`), never on every request. The API's routes run it before their
input is read (`dispatch.AuthFirstRoute`); `require(role)` is the FastAPI
dependency that declares it (and the bearer scheme, for the schema) on a route.
The caller's `Principal` is left on `request.state.principal` so the error
handlers can audit a refused mutating call under the caller's name.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from resilience.api.status import StatusCache
from resilience.api.stream import Hub
from resilience.auth import Expired, Principal, TokenStore, TokenUses
from resilience.cycle import Controller
from resilience.store import ACCEPTED

log = logging.getLogger("resilience.api")

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `resilience token create` or `POST /api/v1/tokens`.",
)


@dataclass
class ApiContext:
    """What every route needs: the controller (read-only but for `submit`), tokens, caches."""

    controller: Controller
    tokens: TokenStore
    cache: StatusCache
    hub: Hub
    uses: TokenUses = field(default_factory=TokenUses)
    writes: set[asyncio.Task[None]] = field(default_factory=set)

    def note_use(self, principal: Principal, now: float) -> None:
        """Note the token's use; when a batch is due, write it in a task of its own."""
        if principal.token_id is None:
            return
        batch = self.uses.seen(principal.token_id, now)
        if batch:
            task = asyncio.create_task(self._write_uses(batch))
            self.writes.add(task)
            task.add_done_callback(self.writes.discard)

    async def _write_uses(self, batch: dict[int, float]) -> None:
        """Last use is a record for people, not for access: a write that fails (the file
        busy past its timeout) is logged and dropped, never an error for a request."""
        try:
            await asyncio.to_thread(self.tokens.record_use, batch)
        except (sqlite3.Error, OSError) as exc:
            log.warning("tokens: last use of %d tokens not recorded (%s)", len(batch), exc)

    async def flush_uses(self) -> None:
        """Write the uses not yet written (on close) and wait for every write."""
        await asyncio.gather(*self.writes)
        await self._write_uses(self.uses.take(time.time()))


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def audit(
    ctx: ApiContext,
    principal: Principal,
    command: str,
    args: dict[str, Any],
    outcome: str,
    detail: str,
) -> None:
    """Write one audit row. An accepted command is answered only once its row is committed
    (rule 6). A refusal is coalesced with its repeats (`Store.record_command`) and committed
    behind the answer: a caller that keeps asking for what it may not costs neither a row
    nor a disk flush per call."""
    store = ctx.controller.store
    future = store.record_command(
        principal.name, principal.role, command, args, outcome, detail, ts=ctx.controller.wall()
    )
    if outcome == ACCEPTED:
        await store.committed(future)


async def authorize(request: Request, role: str) -> Principal:
    """The caller's principal if its bearer token is live and its role allows `role`;
    401 or 403 (a refused mutating call audited) otherwise. Left on `request.state`."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = await _authenticate(request)
        request.state.principal = principal
    if not principal.allows(role):
        detail = f"role: {principal.role} may not do this (needs {role} or above)"
        if request.method in MUTATING:
            await audit(
                context(request),
                principal,
                f"{request.method} {request.url.path}",
                {},
                "forbidden",
                detail,
            )
        raise HTTPException(403, detail)
    return principal


async def _authenticate(request: Request) -> Principal:
    credentials = await bearer(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "Authorization: a bearer token is required (Authorization: Bearer TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    ctx = context(request)
    now = ctx.controller.wall()
    found = await asyncio.to_thread(ctx.tokens.check, credentials.credentials, now)
    if isinstance(found, Expired):
        detail = f"Authorization: token {found.principal.name!r} has expired; ask for a new one"
        if ctx.uses.audit_expired(found.principal.token_id or 0, now):
            await audit(
                ctx, found.principal, f"{request.method} {request.url.path}", {},
                "refused", f"token expired at {found.expires_ts:.0f}",
            )  # fmt: skip
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
    if found is None:
        raise HTTPException(
            401,
            "Authorization: unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    ctx.note_use(found, now)
    return found


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits callers whose token's role allows `role`. The API's routes
    (`dispatch.AuthFirstRoute`) run the same check before their input is read; this one
    then finds the principal already on the request."""

    async def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Principal:
        return await authorize(request, role)

    dependency.__name__ = f"require_{role}"
    dependency.required_role = role  # type: ignore[attr-defined]  # read by dispatch.required_role
    return dependency
