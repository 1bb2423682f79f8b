"""`python -m firmware_sim` as a process: prints where every device listens, stops on a signal."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from resilience.drivers.registers import SUNSPEC_BASE, SUNSPEC_MARKER

from .conftest import SITE_FILE

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


async def test_runs_the_site_until_sigint() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim", "--config", str(SITE_FILE),
        "--free-ports", "--control-port", "0",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or not lines[-1].startswith("control "):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert line, "firmware_sim exited early"
            lines.append(line.decode().strip())
        devices = {fields[0]: fields for fields in (ln.split() for ln in lines[:-1])}
        assert devices["grid_meter"][1] == "sunspec_meter"
        assert devices["grid_meter"][3:] == ["unit", "1"]
        host, port = devices["grid_meter"][2].rsplit(":", 1)
        assert host == "127.0.0.1"

        client = AsyncModbusTcpClient(host, port=int(port), timeout=2.0, retries=0)
        await client.connect()
        rsp = await client.read_holding_registers(SUNSPEC_BASE, count=2, device_id=1)
        client.close()
        assert tuple(rsp.registers) == SUNSPEC_MARKER

        url = lines[-1].split()[1]
        async with httpx.AsyncClient(base_url=url, timeout=5.0) as http:
            assert (await http.get("/state")).json()["bus"]["live"] is True

        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=10)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_bad_site_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "site.toml"
    bad.write_text("[site]\nname = ''\n", encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim", "--config", str(bad),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert str(bad) in err.decode()
