"""`resilience run` serves the API and UI in the controller's event loop; the [api] section."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from firmware_sim.server import SimSite
from resilience.auth import TokenStore
from resilience.config import ConfigError, parse_site
from resilience.service import serve

from .conftest import SITE, site_config

pytestmark = pytest.mark.integration


async def test_run_serves_the_api_and_ui_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = site_config()
    async with SimSite(config, bind_free_ports=True) as sim:
        ours = sim.controller_config()
        ours = ours.model_copy(
            update={
                "site": ours.site.model_copy(update={"store_path": str(tmp_path / "s.sqlite")}),
                "api": ours.api.model_copy(update={"port": 0}),
            }
        )
        token = TokenStore(tmp_path / "s.sqlite").create("t", "viewer", by="test")
        lines: list[str] = []
        announced = asyncio.Event()

        def announce(line: str) -> None:
            lines.append(line)
            if "tablet UI at" in line:
                announced.set()

        task = asyncio.create_task(serve(ours, announce=announce))
        await asyncio.wait_for(announced.wait(), 10)
        url = next(line for line in lines if "tablet UI at" in line).split(" at ")[1].rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            page = await client.get("/")
            assert page.status_code == 200 and "<html" in page.text.lower()
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(100):
                r = await client.get("/api/v1/status", headers=headers)
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.05)  # polling a real server's first cycle
            assert r.status_code == 200
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 10) == 0


def test_api_section_defaults_and_validation() -> None:
    import tomllib

    data = tomllib.loads(SITE.read_text(encoding="utf-8"))
    config = parse_site(data, "site.toml")
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8080)
    with pytest.raises(ConfigError) as err:
        parse_site({**data, "api": {"host": "not a host", "port": 70000}}, "site.toml")
    text = str(err.value)
    assert "site.toml: api.host:" in text and "site.toml: api.port:" in text
    with pytest.raises(ConfigError) as err:
        parse_site({**data, "api": {"bind": "x"}}, "site.toml")
    assert "api.bind: unknown key" in str(err.value)
    lan = {"host": "0.0.0.0", "port": 8443, "allow_plain_http": True}
    assert parse_site({**data, "api": lan}).api.port == 8443  # TLS: tests/api/test_tls.py
