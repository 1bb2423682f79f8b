"""The tablet UI against the real controller on the simulated site, in headless chromium."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilience.api import ApiServer, create_app
from resilience.config import ApiSection
from resilience.model import Mode
from tools.uisite import PHONE, UiSite

pytestmark = pytest.mark.browser


async def sign_in(page: Any, ui: UiSite, role: str) -> None:
    await page.goto(ui.url + "/")
    await page.wait_for_selector("#login-form")
    await page.fill("#token-input", ui.tokens[role])
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector('body[data-connection="live"]')


async def test_operator_watches_a_grid_loss_sheds_a_load_and_registers_a_car(
    ui: UiSite, page: Any
) -> None:
    await page.goto(ui.url + "/")
    await page.fill("#token-input", "not-a-valid-token-at-all-0123456789")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#login-error:not([hidden])")
    assert "not valid" in await page.text_content("#login-error")

    await sign_in(page, ui, "operator")
    await page.wait_for_selector('#banner[data-mode="grid_connected"]')
    assert await page.text_content("#mode-name") == "GRID CONNECTED"
    assert await page.get_attribute("#runbook-link", "href") == "/runbooks/grid_connected.md"

    ui.sim.plant.grid_loss()  # the grid fails: the banner changes live, from the stream
    await page.wait_for_selector('#banner[data-mode="islanded"]', timeout=15_000)
    assert await page.text_content("#mode-name") == "ISLANDED"
    assert await page.get_attribute("#runbook-link", "href") == "/runbooks/islanded.md"
    await page.wait_for_selector('#events .event[data-kind="transition"]')
    # the endurance policy: loads shed for energy say why, and offer to keep them on
    await page.wait_for_selector('button[data-action="keep-on"]', timeout=15_000)
    # (the load offered to be kept on: another may be shed for power, not energy)
    why = '.load:has(button[data-action="keep-on"]) .why'
    assert "Saving energy" in await page.text_content(why)
    assert await page.text_content("#supply-label") == "The cars can give"
    assert "target 72 h" in await page.text_content("#endurance-tiers")

    ui.sim.plant.excuse_load("lift")
    await page.click('button[data-action="shed"][data-load="lift"]')
    await page.wait_for_selector("#confirm[open]")
    assert "Lift" in await page.text_content("#confirm-title")
    await page.click("#confirm-ok")
    await page.wait_for_selector("#toast:not([hidden])")
    assert (await page.text_content("#toast")).startswith("Done")
    await page.wait_for_selector('.load[data-load="lift"] .state[data-state="locked_off"]')
    assert "lift" in ui.running.controller.overrides.locked_off

    await page.click("#btn-register")
    await page.wait_for_selector("#register[open]")
    await page.fill("#reg-vehicle", "donor_v2l_1")
    await page.select_option("#reg-connector", "v2l_1")
    await page.fill("#reg-soc", "80")
    await page.fill("#reg-reserve", "55")
    await page.click('#register-form button[type="submit"]')
    await page.wait_for_selector("#register:not([open])", state="attached")
    assert ui.running.controller.overrides.donors["v2l_1"].reserve_soc_pct == 55
    await page.wait_for_selector('.vehicle[data-connector="v2l_1"] button[data-action="release"]')
    # the new reserve shows with the next status push (the button may come a push earlier)
    await page.wait_for_selector('.vehicle[data-connector="v2l_1"] .meta:has-text("reserve 55")')
    assert "55" in await page.text_content('.vehicle[data-connector="v2l_1"] .meta')

    # the shelter's headcount (the EOC's occupancy): not counted until an operator says
    assert await page.text_content("#headcount") == "Not counted yet"
    await page.fill("#headcount-input", "137")
    await page.click('#headcount-form button[type="submit"]')
    await page.wait_for_selector('#headcount:text-is("137 people")')
    assert "by ui-operator" in await page.text_content("#headcount-by")


async def test_a_token_typed_before_the_app_is_ready_never_goes_into_the_url(
    ui: UiSite, page: Any
) -> None:
    """Sign-in clicked while the app is still starting (a slow tablet; the full suite's
    load): the browser must not send the form itself, which would put the token in the
    URL (and left the page signed out: the flake of the viewer test below)."""
    released = asyncio.Event()

    async def held(route: Any) -> None:
        await released.wait()
        await route.continue_()

    await page.route("**/api/v1/connection", held)  # start() waits on it before it is ready
    await page.goto(ui.url + "/")
    await page.fill("#token-input", ui.tokens["operator"])
    assert await page.get_attribute("body", "data-ready") is None
    assert await page.is_disabled("#login-form button[type=submit]")
    await page.press("#token-input", "Enter")  # the browser's own submit, if it may
    await page.wait_for_load_state()
    assert "token" not in page.url
    released.set()
    await page.click("#login-form button[type=submit]")  # waits for the app to enable it
    await page.wait_for_selector('body[data-connection="live"]')
    assert "token" not in page.url


async def test_a_viewer_sees_no_actions_and_turkish_uses_the_locale(ui: UiSite, page: Any) -> None:
    await sign_in(page, ui, "viewer")
    assert not await page.is_visible("#actions")
    assert await page.locator('button[data-action="shed"]').count() == 0
    assert not await page.is_visible("#events-card")
    assert not await page.is_visible("#headcount-form")  # a viewer reads it, may not set it
    await page.click("#lang-toggle")
    await page.wait_for_selector('html[lang="tr"]', state="attached")
    await page.wait_for_selector('#mode-name:text-is("ŞEBEKEYE BAĞLI")')
    assert await page.text_content("#lang-toggle") == "English"
    load = await page.text_content("#load-w")
    assert load.endswith(" kW") and "," in load  # 12,3 kW in tr-TR
    assert await page.text_content('.tier[data-tier="life_safety"] h3 span') == "Hayati"
    await page.click("#theme-toggle")
    assert await page.get_attribute("html", "data-theme") == "dark"


async def test_touch_targets_are_44_px_on_a_phone(ui: UiSite, page: Any) -> None:
    await page.set_viewport_size(PHONE)
    await sign_in(page, ui, "operator")
    await page.wait_for_selector('button[data-action="shed"]')
    small = await page.evaluate(
        """() => [...document.querySelectorAll('button, a.runbook, select, input')]
            .filter((el) => el.offsetParent !== null)
            .map((el) => [el.id || el.textContent.trim(), el.getBoundingClientRect()])
            .filter(([, r]) => r.height < 44 || r.width < 44)
            .map(([name, r]) => `${name}: ${r.width}x${r.height}`)"""
    )
    assert small == []
    overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow  # nothing wider than the phone


async def test_a_dropped_stream_shows_connection_lost(ui: UiSite, page: Any) -> None:
    await sign_in(page, ui, "operator")
    assert not await page.is_visible("#lost-banner")
    assert ui.mode() is Mode.GRID_CONNECTED
    await ui.server.stop()  # the API goes away under the tablet
    await page.wait_for_selector("#lost-banner:not([hidden])", timeout=10_000)
    assert await page.get_attribute("body", "data-connection") == "lost"
    assert "Connection lost" in await page.text_content("#lost-banner")


async def test_plain_http_on_the_lan_is_warned_on_the_tablet(ui: UiSite, page: Any) -> None:
    """A gateway that serves plain HTTP beyond loopback (allow_plain_http) says so on the
    sign-in screen, before a token is typed, and on the dashboard; one on loopback or TLS
    does not (the `ui` site is loopback)."""
    await page.goto(ui.url + "/")
    await page.wait_for_selector('body[data-ready="true"]')
    assert not await page.is_visible("#plain-http-banner")
    lan = ApiSection(host="0.0.0.0", allow_plain_http=True)
    server = ApiServer(create_app(ui.running.controller, api=lan), "127.0.0.1", 0)
    await server.start()
    try:
        await page.goto(server.url + "/")
        await page.wait_for_selector("#plain-http-banner:not([hidden])")
        assert "plain HTTP" in await page.text_content("#plain-http-banner")
        await page.fill("#token-input", ui.tokens["viewer"])
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector('body[data-connection="live"]')
        assert await page.is_visible("#plain-http-banner")
    finally:
        await server.stop()


async def test_the_api_docs_render_offline_under_the_ui_policy(ui: UiSite, page: Any) -> None:
    """Swagger UI from the package: it renders the schema's operations, every request
    stays on the gateway, and the Content-Security-Policy blocks nothing it needs."""
    requests: list[str] = []
    violations: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    await page.goto(ui.url + "/api/v1/docs")
    await page.wait_for_selector(".opblock-summary-path")
    paths = await page.locator(".opblock-summary-path").all_text_contents()
    assert "/api/v1/status" in {p.replace("\u200b", "") for p in paths}, paths
    assert len(paths) >= 20, paths
    assert requests and all(url.startswith(ui.url + "/") for url in requests), requests
    assert not violations, violations
