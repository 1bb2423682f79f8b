"""What the connection is, and the headers that follow from it.

`TransportHeaders` (ASGI middleware, outermost) adds to every answer:

    Strict-Transport-Security   only when the request came over TLS (HSTS sent over plain
                                HTTP would be ignored at best, and on a gateway that later
                                serves HTTPS it is simply wrong to promise it)
    Cache-Control: no-store     on the API (`/api/`) and `/metrics`, unless the route set
                                its own: every answer there is live state or a secret (a new
                                token), which no browser or proxy cache should keep

`GET /api/v1/connection` (no token: the sign-in screen asks before a token is typed;
not in the OpenAPI schema, it is the UI's) tells the tablet whether the link is TLS and
whether the gateway serves plain HTTP to the network (`allow_plain_http`), so the UI can
show a warning banner.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resilience.api.routes import known_query
from resilience.config import ApiSection

HSTS = "max-age=31536000"
NO_STORE_PREFIXES = ("/api/", "/metrics")


class TransportHeaders:
    """HSTS under TLS; `Cache-Control: no-store` on live state and secrets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"
        path = str(scope.get("path", ""))
        no_store = path.startswith(NO_STORE_PREFIXES) and not path.startswith("/api/v1/docs")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if tls:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                if no_store and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Connection(BaseModel):
    tls: bool
    """whether this request came over HTTPS"""
    plain_http_on_lan: bool
    """the gateway serves plain HTTP beyond loopback (`allow_plain_http = true`): tokens
    cross the network in clear text"""


router = APIRouter(prefix="/api/v1", dependencies=[Depends(known_query)])


def listen_section(request: Request) -> ApiSection:
    api: ApiSection = request.app.state.listen
    return api


@router.get(
    "/connection",
    summary="Whether this link is TLS, and whether the gateway serves plain HTTP on the LAN",
    response_model=Connection,
    # the tablet UI's own question, like the UI's files and the runbooks: not part of the
    # documented API (and with no parameter and no token, it has no input to fuzz)
    include_in_schema=False,
)
async def connection(
    request: Request, api: Annotated[ApiSection, Depends(listen_section)]
) -> dict[str, Any]:
    return {
        "tls": request.url.scheme == "https",
        "plain_http_on_lan": api.plain_http_on_lan,
    }
