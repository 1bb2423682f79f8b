"""The EOC page in headless chromium, over the real EOC service, broker and sites: the sites
appear, one that loses power is shown offline by the live stream (no reload, no poll),
the EOC out of reach shows everything stale until it answers again, and a district
command is confirmed in the page and answered by the site's own controller."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.server import SimSite
from resilience.auth import TokenStore
from resilience.config import FleetSection, load_site
from resilience.eoc.app import EocServer, create_eoc_app
from resilience.eoc.db import EocDb
from resilience.eoc.service import BrokerSettings, EocService
from resilience.service import quiet_pymodbus, start, stop_running
from tests.sites import modbus_only
from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker, SiteAccount
from tools.uisite import CHROMIUM, TABLET, browser

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCHOOL = SiteAccount("kadikoy", "school-1")
HALL = SiteAccount("kadikoy", "hall-2")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", [SCHOOL, HALL])
    b.start()
    yield b
    b.stop()


async def test_the_eoc_page(broker: Broker, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    quiet_pymodbus()
    db = EocDb(tmp_path / "eoc.sqlite")
    tokens = TokenStore(tmp_path / "eoc.sqlite")
    token = tokens.create("desk", "operator", by="test")
    service = EocService(BrokerSettings(broker.host, broker.port, EOC_USER, EOC_PASSWORD), db)
    stop = asyncio.Event()
    eoc = asyncio.create_task(service.run(stop))
    app = create_eoc_app(service, db, tokens)
    server = EocServer(app, "127.0.0.1", 0, name="eoc")
    url = await server.start()
    (tmp_path / "pw").write_text(SCHOOL.password)
    fleet = FleetSection(
        broker_host=broker.host,
        broker_port=broker.port,
        district=SCHOOL.district,
        site_id=SCHOOL.site,
        username=SCHOOL.username,
        password_file=tmp_path / "pw",
        state_min_interval_s=1,
    )
    hall = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet.site_process", broker.host, str(broker.port),
         HALL.district, HALL.site, str(tmp_path / "pw"), str(tmp_path / "hall.sqlite"), "5"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        reference = modbus_only(load_site(ROOT / "config" / "site.toml"))
        async with SimSite(reference, bind_free_ports=True) as sim:
            config = sim.controller_config().model_copy(update={"fleet": fleet})
            run = await start(config, store_path=str(tmp_path / "school.sqlite"))
            try:
                async with browser() as chromium:
                    context = await chromium.new_context(viewport=TABLET, locale="en-GB")
                    page = await context.new_page()
                    page.set_default_timeout(15_000)
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    dialogs: list[str] = []
                    accepting: set[asyncio.Future[None]] = set()

                    def confirm_it(dialog: Any) -> None:
                        dialogs.append(dialog.message)
                        accepting.add(asyncio.ensure_future(dialog.accept()))

                    page.on("dialog", confirm_it)
                    polls: list[str] = []
                    page.on(
                        "request",
                        lambda r: polls.append(r.url) if "/api/sites" in r.url else None,
                    )
                    await page.goto(f"{url}/#token={token}")
                    school = page.locator('tr[data-site="kadikoy/school-1"]')
                    hall_row = page.locator('tr[data-site="kadikoy/hall-2"]')
                    await school.wait_for()
                    await hall_row.wait_for()
                    await page.locator("body[data-link=live]").wait_for()
                    assert "offline" not in (await hall_row.get_attribute("class") or "")
                    hall.kill()  # the hall loses power: its will says offline
                    # pushed by the stream: no reload, no poll
                    await page.locator('tr[data-site="kadikoy/hall-2"].offline').wait_for()
                    await hall_row.filter(has_text="OFFLINE").wait_for()
                    assert polls == [] and "stale" not in (
                        await school.get_attribute("class") or ""
                    )
                    # the EOC's web server goes away: the stream breaks, the polls fail, so
                    # everything is shown stale; it comes back on its port: live again
                    await server.stop()
                    await page.locator("body[data-link=unreachable]").wait_for()
                    await page.locator("#link", has_text="stale").wait_for()
                    await page.locator('tr[data-site="kadikoy/school-1"].stale').wait_for()
                    server = EocServer(app, "127.0.0.1", server.port, name="eoc")
                    await server.start()
                    await page.locator("body[data-link=live]").wait_for()
                    await page.locator('tr[data-site="kadikoy/school-1"]:not(.stale)').wait_for()
                    assert await page.locator("#link").is_hidden()
                    await page.select_option("#district", "kadikoy")
                    await page.select_option("#command", "reconnect")
                    await page.click("#send")  # confirmed in the dialog, answered by the site
                    await page.locator("#message", has_text="school-1: REFUSED").wait_for()
                    assert dialogs[-1] == "send reconnect to 2 site(s) of kadikoy?"
                    # one site, from its page: a tier change the site refuses, and why
                    await school.click()
                    await page.locator('#detail[data-site="kadikoy/school-1"]').wait_for()
                    await page.fill("#site-load", "no-such-load")
                    await page.select_option("#site-tier", "comfort")
                    await page.click("#site-set-tier")
                    await page.locator("#site-result.refused", has_text="no-such-load").wait_for()
                    confirm = "send set_tier load_id=no-such-load tier=comfort to kadikoy/school-1?"
                    assert dialogs[-1] == confirm
                    # a planned island, accepted by the site's own controller
                    await page.click("#site-island")
                    await page.locator("#site-result.accepted", has_text="school-1").wait_for()
                    assert dialogs[-1] == "send planned_island to kadikoy/school-1?"
                    # the site islands: pushed to the table by the stream
                    await school.filter(has_text="islanded").wait_for()
                    # the shelter's headcount, recorded at the site, reaches the EOC's table
                    people = school.locator("td.people")
                    assert await people.text_content() == "not counted"
                    await run.controller.record_headcount(137, actor="ayse", role="operator")
                    await school.locator("td.people", has_text="137").wait_for()
                    # an alarm at the site: its page (open, following its line) offers it by
                    # the site's own number, and the acknowledgement is the site's to accept
                    sim.plant.silence("pv")
                    ack = page.locator("#detail-alarms button[data-alarm]")
                    await ack.wait_for(timeout=30_000)
                    await ack.click()
                    await page.locator("#site-result.accepted", has_text="acknowledged").wait_for()
                    assert dialogs[-1].startswith("send ack_alarm alarm_id=")
                    sim.plant.clear_fault("pv")
                    await page.click("#lang")
                    await page.locator("th", has_text="İlçe").wait_for()
                    await context.close()
                    assert not errors, errors
            finally:
                await stop_running(run)
            assert sim.plant.violations == []
    finally:
        if hall.poll() is None:
            hall.kill()
        hall.wait(10)
        stop.set()
        await asyncio.wait_for(eoc, 10)  # its end ends the page's stream
        await server.stop()
        tokens.close()
        db.close()
