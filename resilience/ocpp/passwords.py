"""OCPP Basic Auth passwords: salted scrypt hashes for the site file, never the password.

A station authenticates with HTTP Basic Auth (OCPP security profiles 1 and 2): user =
its identity, password = a secret of 16..40 characters (OCPP 2.x BasicAuthPassword).
The site file keeps only ``scrypt$n$r$p$<salt b64>$<hash b64>``, made by
`resilience ocpp-password`; `verify_password` recomputes it with the stored cost figures
and compares in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = [
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "PasswordError",
    "hash_password",
    "verify_password",
]

MIN_PASSWORD_CHARS = 16
MAX_PASSWORD_CHARS = 40
"""OCPP 2.x BasicAuthPassword: 16 to 40 characters."""

_N = 2**14  # scrypt cost: ~16 MiB and a few tens of ms, once per connection
_R = 8
_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAXMEM = 64 * 1024 * 1024


class PasswordError(ValueError):
    """A password that may not be used (too short or too long), or a malformed hash."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$<salt>$<hash>`` of `password` with a fresh random salt."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordError(
            f"password: {len(password)} characters; OCPP asks for at least"
            f" {MIN_PASSWORD_CHARS} (BasicAuthPassword is {MIN_PASSWORD_CHARS}-"
            f"{MAX_PASSWORD_CHARS} characters)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordError(
            f"password: {len(password)} characters; OCPP allows at most {MAX_PASSWORD_CHARS}"
        )
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=_HASH_BYTES
    )
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, hash) of a stored line; PasswordError saying what is wrong."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordError("password_hash: not scrypt$n$r$p$<salt>$<hash>")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise PasswordError(
            "password_hash: n, r, p must be integers, salt and hash base64"
        ) from None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or not salt or not digest:
        raise PasswordError("password_hash: scrypt figures out of range")
    if 128 * r * (n + p + 2) > _MAXMEM:
        raise PasswordError("password_hash: scrypt figures need more than 64 MiB")
    return n, r, p, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from (constant-time compare).

    A malformed `stored` line verifies nothing (False), so a typo in the site file
    refuses the station rather than letting it in."""
    try:
        n, r, p, salt, digest = parse_hash(stored)
    except PasswordError:
        return False
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(digest)
    )
    return hmac.compare_digest(candidate, digest)
