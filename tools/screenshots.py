"""Screenshots of the tablet UI for the README: three modes, tablet and phone sizes.

    .venv/bin/python tools/screenshots.py [OUT_DIR]     (default docs/screenshots)

Runs the simulated site (a shortfall scenario: two cars nearly at their
reserve, no sun, a bigger water pump), signs in as an operator, and saves the
main screen grid-connected, islanded (after a grid loss) and in emergency (the
car that shared the load faults), each at 1280x800 (tablet) and 390x844
(phone), as PNG. Needs Debian's chromium (`make test` installs it).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_sim.plant import PlantInit
from resilience.model import Mode, Tier
from tools.uisite import PHONE, ROOT, TABLET, UiSite, browser, ui_site

INIT = PlantInit(
    soc_pct={"fleet_1": 80.0, "fleet_2": 64.0, "fleet_3": 25.2, "fleet_4": 40.2},
    pv_available_fraction=0.0,
)
RATINGS = {"water_pump": 4000.0}  # life-safety + critical = 11.4 kW: more than one car


async def shoot(page: Any, site: UiSite, mode: Mode, out: Path) -> list[Path]:
    await page.wait_for_selector(f'#banner[data-mode="{mode.value}"]', timeout=15_000)
    await page.wait_for_selector('body[data-connection="live"]')
    saved = []
    for label, size in (("tablet", TABLET), ("phone", PHONE)):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(300)  # layout settles after a resize (no event for it)
        assert site.mode() is mode, f"the site left {mode.value} for {site.mode()}"
        await page.wait_for_selector(f'#banner[data-mode="{mode.value}"]')
        path = out / f"{mode.value}-{label}.png"
        await page.screenshot(path=str(path))
        saved.append(path)
    await page.set_viewport_size(TABLET)
    return saved


def on_bus(site: UiSite, tier: Tier) -> int:
    return sum(
        1
        for load in site.running.controller.config.loads
        if load.supply == "bus" and load.tier is tier and site.sim.plant.load_on(load.id)
    )


async def main(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        # the browser first: its start-up burst of CPU is over before the site runs
        async with browser() as chromium, ui_site(Path(tmp), init=INIT, ratings=RATINGS) as site:
            page = await chromium.new_page(viewport=TABLET, locale="en-GB")
            await page.goto(f"{site.url}/#token={site.tokens['operator']}&lang=en&theme=light")
            await site.until(
                lambda: on_bus(site, Tier.COMFORT) == 4, 10, "every load on, grid-connected"
            )
            saved += await shoot(page, site, Mode.GRID_CONNECTED, out)
            site.sim.plant.grid_loss()
            await site.reach(Mode.ISLANDED)
            await site.until(
                lambda: on_bus(site, Tier.CRITICAL) == 4, 15, "critical loads back in island"
            )
            saved += await shoot(page, site, Mode.ISLANDED, out)
            site.sim.plant.fault("charger_2")
            await site.reach(Mode.EMERGENCY)
            await site.until(lambda: on_bus(site, Tier.CRITICAL) == 0, 10, "critical tier shed")
            await page.wait_for_timeout(1200)  # the next throttled status push reaches the page
            saved += await shoot(page, site, Mode.EMERGENCY, out)
    return saved


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for path in asyncio.run(main(target)):
        print(f"{path} {path.stat().st_size // 1024} KiB")
