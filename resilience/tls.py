"""TLS for the API: the certificate and key a gateway serves, checked before use, and the
self-signed pair `resilience tls-cert` (run by deploy/install.sh) makes for the gateway's
own names.

Why self-signed: a shelter's gateway has no public name and, in an outage, no Internet to
ask a CA; a tablet checks the certificate by its SHA-256 fingerprint (printed by
install.sh) or by having it installed. The pair is an ECDSA P-256 key (fast on small ARM
boards, accepted by every current browser) and an X.509 certificate whose subject
alternative names are the gateway's host names and addresses, with serverAuth extended
key usage and a validity of 825 days: the longest Apple platforms accept for any TLS
server certificate. `tls-cert` renews it when fewer than `RENEW_BEFORE_DAYS` remain.

`check_pair` is what check-config runs: the files exist, load, and the key is the
certificate's; each problem names the site-file key (`tls_cert` or `tls_key`).
`server_context` builds the `ssl.SSLContext` uvicorn serves with (TLS 1.2 or newer).

`cryptography` (8 to 9 MB resident once imported) is imported only where a certificate is
made or read, or where a pair has a problem to explain: `resilience run` on a site with a
good pair that is not about to expire checks it with `ssl` alone (the standard library,
loaded anyway by the API server), so the gateway's controller never imports it.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from resilience.config import TlsFiles

if TYPE_CHECKING:  # cryptography is imported where used (module docstring)
    from cryptography import x509

VALID_DAYS = 825
RENEW_BEFORE_DAYS = 30

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _read(path: Path, key: str) -> tuple[bytes | None, list[tuple[str, str]]]:
    if not path.exists():
        return None, [(key, f"no file {str(path)!r}")]
    if not path.is_file():
        return None, [(key, f"{str(path)!r} is not a file")]
    try:
        return path.read_bytes(), []
    except OSError as exc:
        return None, [(key, f"cannot read {str(path)!r} ({exc.strerror or exc})")]


def load_certificate(data: bytes) -> x509.Certificate:
    """The first certificate of a PEM file (the leaf); ValueError if there is none."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(data)


class _Encrypted(Exception):
    """The key asks for a passphrase (raised by `_no_passphrase`, through OpenSSL)."""


def _no_passphrase() -> bytes:
    """ssl's password callback: a service cannot type one, and OpenSSL must not prompt."""
    raise _Encrypted


def _loads(files: TlsFiles) -> ssl.SSLContext | None:
    """The server context when ssl loads the pair (the key unencrypted and the
    certificate's); None when it does not, for whatever reason."""
    try:
        return server_context(files)
    except (OSError, ssl.SSLError, _Encrypted):
        return None


def check_pair(files: TlsFiles) -> list[tuple[str, str]]:
    """(key, reason) for each problem with the pair; [] when the API can serve it.

    Keys are `tls_cert` and `tls_key` (the caller prefixes the section). An expired
    certificate is not a problem here: refusing to start would leave the shelter
    uncontrolled over a date; `resilience run` logs it instead (`expiry_warning`)."""
    if _loads(files) is not None:
        return []  # the common case, with ssl alone
    # Something is wrong: cryptography reads each file on its own to say which and why.
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    cert_data, problems = _read(files.cert, "tls_cert")
    key_data, key_problems = _read(files.key, "tls_key")
    problems += key_problems
    cert = private = None
    if cert_data is not None:
        try:
            cert = load_certificate(cert_data)
        except ValueError:
            problems.append(("tls_cert", f"{str(files.cert)!r} is not a PEM certificate"))
    if key_data is not None:
        try:
            private = serialization.load_pem_private_key(key_data, password=None)
        except TypeError:
            problems.append(
                (
                    "tls_key",
                    f"{str(files.key)!r} is encrypted: the service cannot type a passphrase"
                    " (store the key unencrypted, readable only by root and the service)",
                )
            )
        except (ValueError, UnsupportedAlgorithm):
            problems.append(("tls_key", f"{str(files.key)!r} is not a PEM private key"))
    if cert is not None and private is not None:
        raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*raw) != private.public_key().public_bytes(*raw):
            problems.append(
                (
                    "tls_key",
                    f"{str(files.key)!r} is not the key of the certificate in tls_cert"
                    f" ({str(files.cert)!r})",
                )
            )
    return problems


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The context the API serves with: the pair, TLS 1.2 or newer, no client certificates."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key, password=_no_passphrase)
    return context


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER bytes, as browsers show it: `AB:CD:...`."""
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def not_after(files: TlsFiles) -> datetime.datetime | None:
    """When the certificate expires, read with ssl alone; None if ssl cannot tell (the
    pair does not load, or the certificate does not verify today: expired, not yet
    valid...).

    The standard library decodes a certificate only as a peer's: a TLS handshake in
    memory, the pair serving and a client that trusts that certificate alone, gives it."""
    server = _loads(files)
    if server is None:
        return None
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False  # the certificate itself is the only trust anchor
    client.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        client.load_verify_locations(cafile=files.cert)
    except (OSError, ssl.SSLError):
        return None
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    ours = client.wrap_bio(to_client, to_server)
    theirs = server.wrap_bio(to_server, to_client, server_side=True)
    pending = [ours, theirs]
    for _ in range(8):  # TLS 1.3 takes two round trips here, TLS 1.2 three
        for end in list(pending):
            try:
                end.do_handshake()
                pending.remove(end)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return None  # the certificate does not verify today
        if not pending:
            break
    if pending:
        return None
    peer = ours.getpeercert()
    expires = peer.get("notAfter") if peer else None
    if not isinstance(expires, str):
        return None
    return datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(expires), datetime.UTC)


def expiry_warning(files: TlsFiles, now: datetime.datetime) -> str | None:
    """A sentence for the log when the certificate has expired or will within
    RENEW_BEFORE_DAYS; None otherwise."""
    expires = not_after(files)
    if expires is not None and expires - now >= datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return None  # the common case, with ssl alone
    cert = load_certificate(files.cert.read_bytes())
    left = cert.not_valid_after_utc - now
    if left.total_seconds() <= 0:
        return (
            f"api: the TLS certificate {files.cert} expired on"
            f" {cert.not_valid_after_utc:%Y-%m-%d}: tablets will refuse it;"
            " run deploy/install.sh (or resilience tls-cert) to renew it"
        )
    if left < datetime.timedelta(days=RENEW_BEFORE_DAYS):
        return (
            f"api: the TLS certificate {files.cert} expires on"
            f" {cert.not_valid_after_utc:%Y-%m-%d}; run deploy/install.sh"
            " (or resilience tls-cert) to renew it"
        )
    return None


def make_self_signed(
    names: Sequence[str],
    addresses: Sequence[IpAddress],
    now: datetime.datetime,
    days: int = VALID_DAYS,
) -> tuple[bytes, bytes]:
    """A new key and a certificate for `names` and `addresses`: (cert PEM, key PEM)."""
    if not names and not addresses:
        raise ValueError("a certificate needs at least one name or address")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    common = names[0] if names else str(addresses[0])
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "resilience gateway"),
        ]
    )
    alt: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(names)]
    alt += [x509.IPAddress(address) for address in dict.fromkeys(addresses)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a tablet's clock a bit behind
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def covers(cert: x509.Certificate, names: Sequence[str], addresses: Sequence[IpAddress]) -> bool:
    """Whether the certificate's alternative names include every name and address."""
    from cryptography import x509

    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_names = {name.lower() for name in alt.get_values_for_type(x509.DNSName)}
    have_addresses = set(alt.get_values_for_type(x509.IPAddress))
    return all(name.lower() in have_names for name in names) and all(
        address in have_addresses for address in addresses
    )
