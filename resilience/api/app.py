"""The FastAPI app: `/api/v1` (OpenAPI at `/api/v1/openapi.json`), the tablet UI, the runbooks.

`create_app(controller)` builds it over a running `Controller`. Extend it with
one line, e.g. `app.include_router(metrics_router)`: every part is a router or
a mount added in `create_app`, in the order listed there (the UI's catch-all
mount comes last, so it never hides a route).

    /api/v1/...          the API (routes.py), bearer tokens (security.py)
    /api/v1/docs         Swagger UI, served from the package (docs.py), no token, no CDN
    /runbooks/NAME.md    a runbook as minimal HTML, read-only, no token (offline procedures)
    /                    the tablet UI (static files from resilience/ui/), no token needed to
                         load it: it asks for one
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

import resilience
from resilience.api import markdown
from resilience.api.dispatch import MethodFallback
from resilience.api.docs import add_docs
from resilience.api.metrics import router as metrics_router
from resilience.api.routes import router as api_router
from resilience.api.schema import site_openapi
from resilience.api.security import MUTATING, ApiContext, audit
from resilience.api.status import StatusCache
from resilience.api.stream import Hub
from resilience.api.transport import TransportHeaders
from resilience.api.transport import router as transport_router
from resilience.auth import Principal, TokenStore
from resilience.config import ApiSection
from resilience.cycle import Controller

log = logging.getLogger("resilience.api")

UI_DIR = Path(resilience.__file__).resolve().parent / "ui"
RUNBOOKS_DIR = Path(resilience.__file__).resolve().parents[1] / "runbooks"
_RUNBOOK_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\.md$")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class UiFiles(StaticFiles):
    """The UI's static files, with a strict content policy and revalidation on each load."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = _where(tuple(err.get("loc", ())))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "missing":
            msg = "required field is missing"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message = _validation_message(exc)
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and request.method in MUTATING:
        ctx: ApiContext = request.app.state.api
        await audit(
            ctx,
            principal,
            f"{request.method} {request.url.path}",
            {},
            "rejected",
            message[:500],
        )
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": e.get("type")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": message, "errors": errors}, status_code=422)


def create_app(
    controller: Controller,
    tokens: TokenStore | None = None,
    *,
    ui_dir: Path | None = UI_DIR,
    runbooks_dir: Path | None = None,
    hub: Hub | None = None,
    api: ApiSection | None = None,
) -> FastAPI:
    """The API, UI and runbooks over `controller`; tokens live in its store's SQLite file.
    `api` is the site file's [api] section the app is served under (for the plain-HTTP
    warning; default loopback)."""
    app = FastAPI(
        title="resilience",
        version=resilience.__version__ if hasattr(resilience, "__version__") else "0.1.0",
        description=(
            "Disaster-resilience microgrid controller: status, loads, vehicles, events, alarms,"
            " commands (through the controller's interlocks), tokens, the live stream and the"
            " EDXL-HAVE export. Authenticate with `Authorization: Bearer TOKEN`."
        ),
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served from the package by docs.py, not from a CDN
        redoc_url=None,
    )
    cache = StatusCache(controller)
    app.state.api = ApiContext(
        controller=controller,
        tokens=tokens if tokens is not None else TokenStore(controller.store.path),
        cache=cache,
        hub=hub if hub is not None else Hub(controller, cache),
    )
    app.state.listen = api if api is not None else ApiSection()
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_middleware(TransportHeaders)
    app.openapi = site_openapi(app, controller.config)  # type: ignore[method-assign]

    app.include_router(api_router)
    app.include_router(transport_router)
    add_docs(app, SECURITY_HEADERS, UiFiles)
    app.include_router(metrics_router)

    books = runbooks_dir or _find_runbooks()

    @app.get("/runbooks/{name}", include_in_schema=False)
    async def runbook(name: str) -> HTMLResponse:
        if books is None or not _RUNBOOK_NAME.match(name):
            raise HTTPException(404, f"name: no runbook {name!r}")
        path = books / name
        if not path.is_file():
            raise HTTPException(404, f"name: no runbook {name!r}")
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        title = next((ln.lstrip("# ") for ln in text.splitlines() if ln.startswith("#")), name)
        return HTMLResponse(markdown.page(title, markdown.render(text)), headers=SECURITY_HEADERS)

    @app.get("/runbooks/", include_in_schema=False)
    async def runbook_index() -> HTMLResponse:
        return await runbook("README.md")

    # after every route, before the UI's catch-all: OPTIONS, HEAD and 405 for route paths
    app.router.routes.append(MethodFallback(app))
    if ui_dir is not None and ui_dir.is_dir():
        app.mount("/", UiFiles(directory=ui_dir, html=True), name="ui")
    return app


def _find_runbooks() -> Path | None:
    for candidate in (RUNBOOKS_DIR, Path.cwd() / "runbooks"):
        if candidate.is_dir():
            return candidate
    return None


async def close_app(app: FastAPI) -> None:
    """Stop the app's background work (the stream hub); open streams end."""
    ctx: ApiContext = app.state.api
    await ctx.hub.stop()
    await ctx.flush_uses()
    await asyncio.to_thread(ctx.tokens.close)
