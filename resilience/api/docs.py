"""`/api/v1/docs`: Swagger UI over the API's schema, served entirely from the installed
packages, under the tablet UI's Content-Security-Policy.

FastAPI's default docs page loads Swagger UI from a CDN: blank during an Internet outage
(when a shelter needs it), and a third party's script on the page where an admin pastes
a token. Here the page (`docs/index.html`) and its starter (`docs/init.js`, a file, since
the policy forbids inline script) are ours; Swagger UI's bundle and stylesheet come from
the `fastapi-offline` package, which ships swagger-ui-dist's files (we use only its
files, not its FastAPI wrapper, whose page has an inline script).

    /api/v1/docs                    the page (no token: it documents, and "Authorize"
                                    takes a token for the calls made from it)
    /api/v1/docs/init.js            starts Swagger UI on /api/v1/openapi.json
    /api/v1/docs/assets/...         swagger-ui-bundle.js, swagger-ui.css
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

DOCS_DIR = Path(__file__).resolve().parent / "docs"
SWAGGER_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"


def add_docs(app: FastAPI, headers: dict[str, str], files: type[StaticFiles]) -> None:
    """The docs page, its starter and Swagger UI's files, on `app`: each answer with
    `headers` (the UI's security headers), the files served by `files` (the UI's
    StaticFiles class, which adds them)."""

    @app.get("/api/v1/docs", include_in_schema=False)
    async def docs_page() -> FileResponse:
        return FileResponse(DOCS_DIR / "index.html", headers=headers)

    @app.get("/api/v1/docs/init.js", include_in_schema=False)
    async def docs_init() -> FileResponse:
        return FileResponse(DOCS_DIR / "init.js", media_type="text/javascript", headers=headers)

    app.mount("/api/v1/docs/assets", files(directory=SWAGGER_DIR), name="docs-assets")
