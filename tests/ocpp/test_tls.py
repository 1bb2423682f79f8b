"""OCPP security profile 2: the central system over TLS (``wss://``), Basic Auth inside it.

The central system listens on 127.0.0.1 with a certificate this test makes (as
`resilience tls-cert` makes the gateway's); a station that trusts that certificate
boots, one that does not, or that speaks plain ``ws://``, gets no connection; and the
simulated site's stations (firmware_sim, what `make demo` runs) connect over it too.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage
from websockets.typing import Subprotocol

from firmware_sim.server import SimSite
from resilience.config import ConfigError, cross_check
from tests.ocpp.station import (
    PASSWORD,
    STATIONS,
    basic_auth,
    ocpp_site,
    running_csms,
    until,
)

pytestmark = pytest.mark.timeout(60)

IDENTITY = "TLS-STATION-1"
STATION = {"tls_1": {"ocpp": {"identity": IDENTITY}}}
OCPP21 = [Subprotocol("ocpp2.1")]


def write_pair(directory: Path, name: str = "gw") -> tuple[Path, Path]:
    from resilience.tls import make_self_signed

    now = datetime.datetime.now(datetime.UTC)
    cert, key = make_self_signed(["localhost"], [ipaddress.ip_address("127.0.0.1")], now)
    (directory / f"{name}.pem").write_bytes(cert)
    (directory / f"{name}.key").write_bytes(key)
    return directory / f"{name}.pem", directory / f"{name}.key"


async def test_a_station_boots_over_tls_and_nothing_else_connects(tmp_path: Path) -> None:
    cert, key = write_pair(tmp_path)
    config = ocpp_site(STATION, tls_cert=str(cert), tls_key=str(key))
    assert cross_check(config) == []
    trust = ssl.create_default_context(cafile=str(cert))
    headers = {"Authorization": basic_auth(IDENTITY, PASSWORD)}
    async with running_csms(config) as (csms, _):
        assert csms.url.startswith("wss://127.0.0.1:")
        driver = csms.drivers["tls_1"]
        uri = f"{csms.url}/{IDENTITY}"
        socket = await connect(uri, subprotocols=OCPP21, additional_headers=headers, ssl=trust)
        station = STATIONS["2.1"](IDENTITY, socket)
        task = asyncio.create_task(station.start())
        try:
            boot = await station.boot()
            assert boot.status == "Accepted"
            await until(lambda: driver.state.connected and driver.state.booted, 5)
        finally:
            await socket.close()
            task.cancel()
        await until(lambda: not driver.state.connected, 5)
        # a station that does not trust the gateway's certificate: no connection
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(uri, subprotocols=OCPP21, additional_headers=headers)
        # and plain WebSocket on the TLS port: no connection
        plain = uri.replace("wss://", "ws://")
        with pytest.raises((InvalidMessage, ConnectionError, EOFError)):
            await connect(plain, subprotocols=OCPP21, additional_headers=headers)
        assert not driver.state.connected


async def test_the_simulated_stations_connect_over_tls(tmp_path: Path) -> None:
    cert, key = write_pair(tmp_path)
    config = ocpp_site(STATION, tls_cert=str(cert), tls_key=str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    async with running_csms(config) as (csms, _):
        site = SimSite(config, bind_free_ports=True, tick_s=0.05, instant=True)
        await site.start()
        try:
            await site.start_stations(csms.url, {IDENTITY: PASSWORD}, ssl_context=trust)
            driver = csms.drivers["tls_1"]
            await until(lambda: driver.state.connected and driver.state.booted, 15)
        finally:
            await site.stop()


def test_check_config_wants_the_pair_whole_and_matching(tmp_path: Path) -> None:
    cert, key = write_pair(tmp_path)
    _, other_key = write_pair(tmp_path, "other")

    def problems(**tls: str) -> list[tuple[str, str]]:
        with pytest.raises(ConfigError) as caught:
            ocpp_site(STATION, **tls)
        return [(p.key, p.reason) for p in caught.value.problems]

    assert problems(tls_cert=str(cert)) == [
        ("ocpp.tls_key", "required with ocpp.tls_cert (the certificate and its key)")
    ]
    mismatched = problems(tls_cert=str(cert), tls_key=str(other_key))
    assert mismatched and all(where.startswith("ocpp.tls_") for where, _ in mismatched)
    missing = problems(tls_cert=str(tmp_path / "nope.pem"), tls_key=str(key))
    assert any(where == "ocpp.tls_cert" and "no file" in why for where, why in missing), missing
