"""HTTPS for the API, the plain-HTTP refusal and warning, HSTS and `Cache-Control: no-store`.

The HTTPS server listens on 127.0.0.1 with a certificate this test makes; the client
trusts that certificate only, and checks the host name (127.0.0.1 is in the
certificate's subject alternative names).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import tomllib
from pathlib import Path

import httpx
import pytest

from resilience import cli
from resilience.api.server import start_api
from resilience.config import ApiSection, ConfigError, TlsFiles, parse_site
from resilience.tls import expiry_warning, load_certificate, make_self_signed, not_after

from .conftest import SITE, Api

pytestmark = pytest.mark.integration

NOW = datetime.datetime.now(datetime.UTC)
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def write_pair(
    directory: Path, name: str = "gw", days: int = 825, now: datetime.datetime = NOW
) -> tuple[Path, Path]:
    cert, key = make_self_signed(["localhost"], [LOOPBACK], now, days=days)
    (directory / f"{name}.pem").write_bytes(cert)
    (directory / f"{name}.key").write_bytes(key)
    return directory / f"{name}.pem", directory / f"{name}.key"


def site_data() -> dict[str, object]:
    return tomllib.loads(SITE.read_text(encoding="utf-8"))


async def test_https_with_a_verified_certificate_and_hsts(api: Api, tmp_path: Path) -> None:
    cert, key = write_pair(tmp_path)
    section = ApiSection(host="127.0.0.1", port=0, tls_cert=cert, tls_key=key)
    server = await start_api(api.running.controller, "127.0.0.1", 0, section)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        headers = {"Authorization": f"Bearer {api.tokens['viewer']}"}
        async with httpx.AsyncClient(base_url=server.url, verify=trust, headers=headers) as c:
            r = await c.get("/api/v1/status")
            assert r.status_code == 200, r.text
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            assert r.headers["cache-control"] == "no-store"
            page = await c.get("/")
            assert page.status_code == 200 and "strict-transport-security" in page.headers
            link = (await c.get("/api/v1/connection")).json()
            assert link == {"tls": True, "plain_http_on_lan": False}
        # a client that does not trust this certificate refuses the connection
        async with httpx.AsyncClient(base_url=server.url) as stranger:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await stranger.get("/api/v1/status")
        # and plain HTTP on the TLS port gets no answer at all
        plain = server.url.replace("https://", "http://")
        async with httpx.AsyncClient(base_url=plain) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get("/api/v1/status", headers=headers)
    finally:
        await server.stop()


async def test_plain_http_has_no_hsts_and_live_answers_are_not_stored(api: Api) -> None:
    viewer = api.client("viewer")
    r = await viewer.get("/api/v1/status")
    assert r.status_code == 200
    assert "strict-transport-security" not in r.headers
    assert r.headers["cache-control"] == "no-store"
    assert (await viewer.get("/api/v1/me")).headers["cache-control"] == "no-store"
    admin = api.client("admin")
    created = await admin.post("/api/v1/tokens", json={"name": "tls-test", "role": "viewer"})
    assert created.status_code == 201 and created.json()["token"]
    assert created.headers["cache-control"] == "no-store"
    assert (await admin.get("/api/v1/tokens")).headers["cache-control"] == "no-store"
    # the UI's files are revalidated, not forbidden from caching
    assert (await viewer.get("/")).headers["cache-control"] == "no-cache"
    link = await api.client(role=None).get("/api/v1/connection")
    assert link.json() == {"tls": False, "plain_http_on_lan": False}


async def test_allowed_plain_http_on_the_lan_is_warned(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # the section says 0.0.0.0 with allow_plain_http; the test binds loopback only
    section = ApiSection(host="0.0.0.0", port=0, allow_plain_http=True)
    with caplog.at_level(logging.WARNING, logger="resilience.api"):
        server = await start_api(api.running.controller, "127.0.0.1", 0, section)
    try:
        assert any("plain HTTP on 0.0.0.0" in r.getMessage() for r in caplog.records)
        async with httpx.AsyncClient(base_url=server.url) as c:
            link = (await c.get("/api/v1/connection")).json()
        assert link == {"tls": False, "plain_http_on_lan": True}
    finally:
        await server.stop()


def test_a_lan_address_without_tls_is_refused_unless_allowed(tmp_path: Path) -> None:
    data = site_data()
    with pytest.raises(ConfigError) as err:
        parse_site({**data, "api": {"host": "0.0.0.0"}}, "site.toml")
    assert "site.toml: api.host: 0.0.0.0 is not a loopback address" in str(err.value)
    assert "clear text" in str(err.value)
    with pytest.raises(ConfigError, match=r"api\.host: 192\.168\.4\.1 is not a loopback"):
        parse_site({**data, "api": {"host": "192.168.4.1"}}, "site.toml")
    allowed = parse_site({**data, "api": {"host": "0.0.0.0", "allow_plain_http": True}})
    assert allowed.api.plain_http_on_lan
    assert not parse_site({**data, "api": {"host": "::1"}}).api.plain_http_on_lan
    cert, key = write_pair(tmp_path)
    served = parse_site({**data, "api": {"host": "0.0.0.0", "tls_cert": str(cert),
                                         "tls_key": str(key)}})  # fmt: skip
    assert not served.api.plain_http_on_lan


def test_check_config_and_run_refuse_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SITE.read_text(encoding="utf-8") + '\n[api]\nhost = "0.0.0.0"\n'
    site = tmp_path / "site.toml"
    site.write_text(text, encoding="utf-8")
    assert cli.main(["check-config", str(site)]) == 1
    assert "api.host: 0.0.0.0 is not a loopback address" in capsys.readouterr().out
    assert cli.main(["run", "--config", str(site)]) == 1
    assert "api.host: 0.0.0.0 is not a loopback address" in capsys.readouterr().out


def test_tls_files_are_checked_and_problems_name_the_key(tmp_path: Path) -> None:
    data = site_data()
    cert, key = write_pair(tmp_path)
    other_cert, other_key = write_pair(tmp_path, "other")

    def problems(api: dict[str, object]) -> str:
        with pytest.raises(ConfigError) as err:
            parse_site({**data, "api": api}, "site.toml")
        return str(err.value)

    text = problems({"tls_cert": str(cert)})
    assert "api.tls_key: required with api.tls_cert" in text
    text = problems({"tls_cert": str(tmp_path / "nope.pem"), "tls_key": str(key)})
    assert f"api.tls_cert: no file '{tmp_path / 'nope.pem'}'" in text
    text = problems({"tls_cert": str(cert), "tls_key": str(other_key)})
    assert f"api.tls_key: '{other_key}' is not the key of the certificate in tls_cert" in text
    text = problems({"tls_cert": str(key), "tls_key": str(cert)})
    assert "api.tls_cert:" in text and "is not a PEM certificate" in text
    assert "api.tls_key:" in text and "is not a PEM private key" in text
    ok = parse_site({**data, "api": {"tls_cert": str(other_cert), "tls_key": str(other_key)}})
    assert ok.api.tls_files() is not None


async def test_an_expiring_certificate_is_logged(
    api: Api, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = write_pair(tmp_path, days=3)
    section = ApiSection(host="127.0.0.1", tls_cert=cert, tls_key=key)
    with caplog.at_level(logging.WARNING, logger="resilience.api"):
        server = await start_api(api.running.controller, "127.0.0.1", 0, section)
    await server.stop()
    assert any("expires on" in r.getMessage() for r in caplog.records)


def test_an_encrypted_key_is_refused_and_nothing_prompts_for_its_passphrase(
    tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = write_pair(tmp_path)
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(ConfigError) as err:
        parse_site({**site_data(), "api": {"tls_cert": str(cert), "tls_key": str(key)}})
    assert f"api.tls_key: '{key}' is encrypted: the service cannot type a passphrase" in str(
        err.value
    )


def test_ssl_alone_reads_the_expiry_cryptography_reads(tmp_path: Path) -> None:
    """`resilience run` reads a good pair's expiry with ssl (no cryptography import); a
    pair near or past its expiry is read by cryptography for the warning's date."""
    files = TlsFiles(*write_pair(tmp_path, days=40))
    assert not_after(files) == load_certificate(files.cert.read_bytes()).not_valid_after_utc
    assert expiry_warning(files, NOW) is None
    soon = expiry_warning(files, NOW + datetime.timedelta(days=11))  # 29 days left
    assert soon is not None and "expires on" in soon
    old = TlsFiles(*write_pair(tmp_path, "old", days=5, now=NOW - datetime.timedelta(days=10)))
    assert not_after(old) is None  # ssl: it does not verify today
    expired = expiry_warning(old, NOW)
    assert expired is not None and "expired on" in expired
