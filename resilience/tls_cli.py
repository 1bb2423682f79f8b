"""`resilience tls-cert`: the API's certificate on a gateway (deploy/install.sh runs it), and
the signed-in link's QR code that `resilience token create --link` prints.

`tls-cert` keeps a certificate the site file configures (it is checked and its
fingerprint printed). Otherwise it makes a self-signed one (resilience.tls) for the
gateway's names and addresses in DIR (`cert.pem` 0644, `key.pem` 0640, group GROUP so
the service can read it), writes `tls_cert` and `tls_key` into the site file's [api]
section, and prints the SHA-256 fingerprint a tablet is checked against. Run again, it
keeps its pair while the pair still covers every name and address and has more than
RENEW_BEFORE_DAYS left; else it makes a new one (the fingerprint changes: the output
says so).

The site file is read as TOML, not validated: a site that serves the LAN is invalid
until it has its certificate, which is what this command gives it.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import ipaddress
import os
import re
import socket
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any, TextIO

from resilience.config import TlsFiles

DEFAULT_DIR = "/etc/resilience/tls"
_API_HEADER = re.compile(r"^\s*\[\s*api\s*\]\s*(#.*)?$")


class TlsSetupError(Exception):
    """The certificate could not be set up; the message says where and why."""


def tls_cert_arguments(parser: argparse.ArgumentParser) -> None:
    from resilience.cli import add_config_argument

    add_config_argument(parser)
    parser.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"where a new pair goes (default: {DEFAULT_DIR})"
    )
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        help="a host name tablets use (repeat; default: this host's name and NAME.local)",
    )
    parser.add_argument(
        "--ip", action="append", default=[], help="an address tablets use (repeat)"
    )
    parser.add_argument("--group", help="the group that may read the key (the service's)")
    parser.add_argument("--days", type=int, default=None, help="validity of a new certificate")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def with_tls_keys(text: str, files: TlsFiles) -> str:
    """The site file's text with `tls_cert` and `tls_key` in its [api] section (added
    after the header, or a new section at the end); everything else is kept as it was."""
    lines = [
        f"tls_cert = {_toml_string(str(files.cert))}  # resilience tls-cert",
        f"tls_key = {_toml_string(str(files.key))}",
    ]
    out = text.splitlines(keepends=True)
    for n, line in enumerate(out):
        if _API_HEADER.match(line):
            out[n + 1 : n + 1] = [line + "\n" for line in lines]
            break
    else:
        tail = "" if not text or text.endswith("\n") else "\n"
        out.append(tail + "\n[api]\n" + "".join(line + "\n" for line in lines))
    return "".join(out)


def _replace_file(path: Path, text: str) -> None:
    """Write `text` over `path` at once, with the old file's mode and owner."""
    before = path.stat()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, before.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, before.st_uid, before.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(path: Path, data: bytes, mode: int, gid: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        if gid >= 0:
            os.chown(tmp, -1, gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _api_table(site: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(site.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise TlsSetupError(f"{site}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TlsSetupError(f"{site}: (syntax): {exc}") from None
    api = data.get("api", {})
    if not isinstance(api, dict):
        raise TlsSetupError(f"{site}: api: must be a table")
    return api


def setup_tls(
    site: Path,
    directory: Path,
    names: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
    *,
    group: str | None = None,
    days: int | None = None,
    now: datetime.datetime | None = None,
    out: TextIO | None = None,
) -> TlsFiles:
    """Keep, check or make the API's pair for the site file at `site`; returns it."""
    from resilience import tls

    out = out or sys.stdout
    now = now or datetime.datetime.now(datetime.UTC)
    api = _api_table(site)
    ours = TlsFiles(directory / "cert.pem", directory / "key.pem")
    configured = None
    if "tls_cert" in api or "tls_key" in api:
        if "tls_cert" not in api or "tls_key" not in api:
            missing = "tls_key" if "tls_cert" in api else "tls_cert"
            raise TlsSetupError(f"{site}: api.{missing}: required with the other (the pair)")
        configured = TlsFiles(Path(str(api["tls_cert"])), Path(str(api["tls_key"])))
    if configured is not None and configured != ours:
        problems = tls.check_pair(configured)
        if problems:
            raise TlsSetupError(
                "; ".join(f"{site}: api.{key}: {reason}" for key, reason in problems)
            )
        cert = tls.load_certificate(configured.cert.read_bytes())
        print(f"tls: the site file's certificate {configured.cert} (kept as it is)", file=out)
        print(f"tls: SHA-256 fingerprint {tls.fingerprint(cert)}", file=out)
        return configured

    gid = -1
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise TlsSetupError(f"--group: no group {group!r}") from None
    elif ours.key.is_file() and ours.key.stat().st_mode & 0o040:
        # run by hand without --group: a renewed key stays readable by the service's group
        gid = ours.key.stat().st_gid
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o750 if gid >= 0 else 0o700)
    if gid >= 0:
        os.chown(directory, -1, gid)
    renew_by = now + datetime.timedelta(days=tls.RENEW_BEFORE_DAYS)
    keep = False
    if ours.cert.is_file() and ours.key.is_file() and not tls.check_pair(ours):
        cert = tls.load_certificate(ours.cert.read_bytes())
        keep = cert.not_valid_after_utc > renew_by and tls.covers(cert, names, addresses)
    if keep:
        print(f"tls: kept {ours.cert} (covers every name, valid until"
              f" {cert.not_valid_after_utc:%Y-%m-%d})", file=out)  # fmt: skip
        if gid >= 0:
            os.chown(ours.key, -1, gid)
    else:
        renewing = ours.cert.exists()
        cert_pem, key_pem = tls.make_self_signed(
            names, addresses, now, days if days is not None else tls.VALID_DAYS
        )
        _write(ours.key, key_pem, 0o640 if gid >= 0 else 0o600, gid)
        _write(ours.cert, cert_pem, 0o644, gid)
        cert = tls.load_certificate(cert_pem)
        print(
            f"tls: {'new' if renewing else 'made'} self-signed certificate {ours.cert} for"
            f" {', '.join([*names, *map(str, addresses)])}, valid until"
            f" {cert.not_valid_after_utc:%Y-%m-%d}"
            + (" (it replaces the old one: tablets must accept it again)" if renewing else ""),
            file=out,
        )
    if configured is None:
        text = site.read_text(encoding="utf-8-sig")
        edited = with_tls_keys(text, ours)
        table = tomllib.loads(edited).get("api", {})
        if (table.get("tls_cert"), table.get("tls_key")) != (str(ours.cert), str(ours.key)):
            raise TlsSetupError(f"{site}: could not add tls_cert and tls_key to [api]")
        _replace_file(site, edited)
        print(f"tls: added tls_cert and tls_key to [api] in {site}", file=out)
    print(f"tls: SHA-256 fingerprint {tls.fingerprint(cert)}", file=out)
    return ours


def tls_cert_command(args: argparse.Namespace) -> int:
    names = list(args.name)
    if not names:
        host = socket.gethostname()
        names = [host, f"{host}.local"]
    names.append("localhost")
    try:
        addresses = [ipaddress.ip_address(a) for a in ["127.0.0.1", "::1", *args.ip]]
    except ValueError as exc:
        print(f"resilience tls-cert: --ip: {exc}")
        return 1
    try:
        setup_tls(
            Path(args.config),
            Path(args.dir),
            list(dict.fromkeys(names)),
            list(dict.fromkeys(addresses)),
            group=args.group,
            days=args.days,
        )
    except (TlsSetupError, OSError) as exc:
        print(f"resilience tls-cert: {exc}")
        return 1
    return 0


def signed_in_link(
    host: str, port: int, tls: bool, token: str, lan_host: str | None = None
) -> str:
    """The tablet UI's URL with the token in its fragment (never sent to the server)."""
    if host in ("0.0.0.0", "::"):
        host = lan_host or f"{socket.gethostname()}.local"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}/#token={token}"


def print_qr(text: str, out: TextIO | None = None) -> None:
    """`text` as a QR code drawn in the terminal (Unicode half blocks)."""
    import segno

    segno.make(text, error="m").terminal(out=out or sys.stdout, compact=True)
