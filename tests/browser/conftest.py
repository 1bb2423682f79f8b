"""The tablet UI in a real browser: Debian's headless chromium through Playwright's async API.

`ui` runs the simulated site, the real controller and the app (uvicorn on
127.0.0.1 port 0) for one test, and `page` is a fresh chromium page at tablet
size. Both are stopped by the fixtures. Tests await selectors and the
controller's status, never sleep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tools.uisite import CHROMIUM, TABLET, UiSite, browser, ui_site

pytestmark = pytest.mark.browser


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[UiSite]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    async with browser() as chromium, ui_site(tmp_path) as site:
        site.chromium = chromium  # type: ignore[attr-defined]
        yield site


@pytest.fixture
async def page(ui: UiSite) -> AsyncIterator[Any]:
    context = await ui.chromium.new_context(viewport=TABLET, locale="en-GB")  # type: ignore[attr-defined]
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, errors
