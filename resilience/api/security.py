"""Bearer-token authentication and role checks for the API routes.

`authorize(request, role)` reads `Authorization: Bearer TOKEN`, looks the token
up in the site's token table (per request, no cache: a token revoked from the
command line stops working at once), and answers 401 for a missing or unknown
token, 403 for a role that may not do this. The API's routes run it before their
input is read (`dispatch.AuthFirstRoute`); `require(role)` is the FastAPI
dependency that declares it (and the bearer scheme, for the schema) on a route.
The caller's `Principal` is left on `request.state.principal` so the error
handlers can audit a refused mutating call under the caller's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from resilience.api.status import StatusCache
from resilience.api.stream import Hub
from resilience.auth import Principal, TokenStore
from resilience.cycle import Controller
from resilience.store import ACCEPTED

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
    principal = await asyncio.to_thread(context(request).tokens.lookup, credentials.credentials)
    if principal is None:
        raise HTTPException(
            401,
            "Authorization: unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


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
