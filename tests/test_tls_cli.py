"""`resilience tls-cert` (what deploy/install.sh runs) and `token create --link`."""

from __future__ import annotations

import grp
import ipaddress
import os
import re
import tomllib
from pathlib import Path

import pytest
from cryptography import x509

from resilience import cli
from resilience.tls import fingerprint, load_certificate

SITE = Path(__file__).resolve().parents[1] / "config" / "site.toml"


def lan_site(
    tmp_path: Path,
    api: str = '[api]  # tablets on the Wi-Fi\nhost = "0.0.0.0"\n',
    name: str = "site.toml",
) -> Path:
    text = SITE.read_text(encoding="utf-8").replace(
        'store_path = "', f'store_path = "{tmp_path}/', 1
    )
    site = tmp_path / name
    site.write_text(text + "\n" + api, encoding="utf-8")
    return site


def printed_fingerprint(out: str) -> str:
    found = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", out)
    assert found is not None, out
    return found.group(1)


def test_tls_cert_makes_a_pair_for_the_names_and_the_site_file_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = lan_site(tmp_path)
    assert cli.main(["check-config", str(site)]) == 1  # the LAN without TLS
    capsys.readouterr()
    tls_dir = tmp_path / "tls"
    args = ["tls-cert", "--config", str(site), "--dir", str(tls_dir),
            "--name", "gw", "--name", "gw.local", "--ip", "192.0.2.7"]  # fmt: skip
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    cert = load_certificate((tls_dir / "cert.pem").read_bytes())
    assert printed_fingerprint(out) == fingerprint(cert)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(alt.get_values_for_type(x509.DNSName)) == {"gw", "gw.local", "localhost"}
    assert set(alt.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "192.0.2.7")
    }
    assert (tls_dir / "key.pem").stat().st_mode & 0o777 == 0o600  # no --group: owner only
    text = site.read_text(encoding="utf-8")
    assert "[api]  # tablets on the Wi-Fi\ntls_cert = " in text  # comments kept
    api = tomllib.loads(text)["api"]
    assert api["tls_cert"] == str(tls_dir / "cert.pem") and api["host"] == "0.0.0.0"
    assert cli.main(["check-config", str(site)]) == 0

    # again: the pair is kept (same fingerprint) and the site file is not touched
    assert cli.main(args) == 0
    again = capsys.readouterr().out
    assert "kept" in again and printed_fingerprint(again) == fingerprint(cert)
    assert site.read_text(encoding="utf-8") == text
    # a new address the certificate does not cover: a new pair
    assert cli.main([*args, "--ip", "192.0.2.8"]) == 0
    renewed = capsys.readouterr().out
    assert "it replaces the old one" in renewed
    assert printed_fingerprint(renewed) != fingerprint(cert)
    assert site.read_text(encoding="utf-8") == text


def test_tls_cert_adds_an_api_section_and_keeps_a_configured_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = lan_site(tmp_path, api="")
    assert cli.main(["tls-cert", "--config", str(site), "--dir", str(tmp_path / "a")]) == 0
    assert "tls_cert" in tomllib.loads(site.read_text(encoding="utf-8"))["api"]
    capsys.readouterr()
    # a pair the site file names elsewhere is checked and kept, never replaced
    pair = f'[api]\ntls_cert = "{tmp_path}/a/cert.pem"\ntls_key = "{tmp_path}/a/key.pem"\n'
    other = lan_site(tmp_path, api=pair, name="other.toml")
    before = other.read_text(encoding="utf-8")
    assert cli.main(["tls-cert", "--config", str(other), "--dir", str(tmp_path / "c")]) == 0
    assert "kept as it is" in capsys.readouterr().out
    assert other.read_text(encoding="utf-8") == before and not (tmp_path / "c").exists()
    # a configured key that is not the certificate's: refused, naming the key
    assert cli.main(["tls-cert", "--config", str(site), "--dir", str(tmp_path / "d")]) == 0
    other.write_text(before.replace(f"{tmp_path}/a/key.pem", f"{tmp_path}/d/key.pem"))
    capsys.readouterr()
    assert cli.main(["tls-cert", "--config", str(other), "--dir", str(tmp_path / "c")]) == 1
    assert "api.tls_key:" in capsys.readouterr().out


def test_token_create_link_prints_the_signed_in_link_and_its_qr_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = lan_site(tmp_path)
    assert cli.main(["tls-cert", "--config", str(site), "--dir", str(tmp_path / "tls")]) == 0
    capsys.readouterr()
    create = ["token", "create", "--role", "operator", "--name", "tablet", "--link",
              "--lan-host", "192.0.2.7", "--config", str(site)]  # fmt: skip
    assert cli.main(create) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert f"signed-in link: https://192.0.2.7:8080/#token={secret}" in out
    assert "█" in out or "▀" in out  # the QR code, in half blocks


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
def test_the_service_group_may_read_the_key(tmp_path: Path) -> None:
    site = lan_site(tmp_path)
    tls_dir = tmp_path / "tls"
    assert cli.main(["tls-cert", "--config", str(site), "--dir", str(tls_dir),
                     "--group", "daemon"]) == 0  # fmt: skip
    key = (tls_dir / "key.pem").stat()
    assert key.st_mode & 0o777 == 0o640 and key.st_gid == grp.getgrnam("daemon").gr_gid
    assert tls_dir.stat().st_mode & 0o777 == 0o750
    assert cli.main(["tls-cert", "--config", str(site), "--dir", str(tls_dir),
                     "--group", "no-such-group"]) == 1  # fmt: skip
    # by hand, without --group, a renewal keeps the key readable by the service's group
    assert cli.main(["tls-cert", "--config", str(site), "--dir", str(tls_dir),
                     "--ip", "192.0.2.9"]) == 0  # fmt: skip
    key = (tls_dir / "key.pem").stat()
    assert key.st_mode & 0o777 == 0o640 and key.st_gid == grp.getgrnam("daemon").gr_gid
