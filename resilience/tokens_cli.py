"""`resilience token create|rotate|revoke|list`: API tokens in the store the site file names.

The store path comes from the site file (`site.store_path`, relative to the
working directory), so a token made while `resilience run` serves that site
works at once: the API looks tokens up per request. Every change is written to
the audit trail (`commands` table) as actor `cli:USER`, role `admin` (whoever
can run this on the gateway can read the database anyway), and committed
before the command reports success. `create` and `rotate` print the token once, as the
last word of their output; only its SHA-256 is kept. `--expires 30d` gives a token a
lifetime; `list` shows each live token's expiry and last use (written by the API at
most once a minute, so it may lag by that much).
"""

from __future__ import annotations

import argparse
import getpass
import time

from resilience.auth import TokenError, TokenInfo, TokenStore, parse_duration
from resilience.config import ConfigError, load_site
from resilience.store import Store
from resilience.tls_cli import print_qr, signed_in_link


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _audit(path: str, command: str, args: dict[str, str], outcome: str, detail: str) -> None:
    store = Store(path)
    try:
        store.record_command(_actor(), "admin", command, args, outcome, detail, ts=time.time())
    finally:
        if not store.close():
            raise OSError(f"{path}: the audit record could not be written")


def _when(ts: float | None, never: str) -> str:
    return never if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _row(info: TokenInfo, now: float) -> str:
    expires = _when(info.expires_ts, "never")
    if info.expires_ts is not None and info.expires_ts <= now:
        expires += " (expired)"
    return (
        f"{info.name:<24} {info.role:<10} created {_when(info.created_ts, '?')}"
        f" by {info.created_by:<16} expires {expires:<16}"
        f" last used {_when(info.last_used_ts, 'never')}"
    )


def token_command(args: argparse.Namespace) -> int:
    try:
        site = load_site(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    path = site.site.store_path
    tokens = TokenStore(path)
    try:
        if args.action == "list":
            now = time.time()
            for info in tokens.list():
                print(_row(info, now))
            return 0
        if args.action == "rotate":
            return _rotate(path, tokens, args)
        if args.action == "create":
            request = {"name": args.name, "role": args.role}
            try:
                expires_s = None if args.expires is None else parse_duration(args.expires)
                if args.expires is not None:
                    request["expires"] = args.expires
                secret = tokens.create(args.name, args.role, by=_actor(), expires_s=expires_s)
            except TokenError as exc:
                _audit(path, "token_create", request, "refused", str(exc))
                print(f"resilience token: {exc}")
                return 1
            _audit(path, "token_create", request, "accepted", f"{args.role} token {args.name}")
            ends = None if expires_s is None else time.time() + expires_s
            until = "" if ends is None else f", valid until {_when(ends, '')}"
            print(
                f"{args.role} token {args.name!r} created in {path}{until};"
                " it is shown only once:"
            )
            if args.link:
                link = signed_in_link(
                    site.api.host, site.api.port, site.api.tls_files() is not None, secret,
                    args.lan_host,
                )  # fmt: skip
                print_qr(link)
                print(f"signed-in link: {link}")
            print(secret)
            return 0
        request = {"name": args.name}
        if not tokens.revoke(args.name, by=_actor()):
            detail = f"name: no live token named {args.name!r}"
            _audit(path, "token_revoke", request, "refused", detail)
            print(f"resilience token: {detail}")
            return 1
        _audit(path, "token_revoke", request, "accepted", f"token {args.name} revoked")
        print(f"token {args.name!r} revoked")
        return 0
    finally:
        tokens.close()


def _rotate(path: str, tokens: TokenStore, args: argparse.Namespace) -> int:
    """A new secret under the same name and role; the old one stops working at once."""
    request = {"name": args.name}
    if args.expires is not None:
        request["expires"] = args.expires
    try:
        expires_s = None if args.expires is None else parse_duration(args.expires)
        secret, info = tokens.rotate(args.name, by=_actor(), expires_s=expires_s)
    except TokenError as exc:
        _audit(path, "token_rotate", request, "refused", str(exc))
        print(f"resilience token: {exc}")
        return 1
    _audit(path, "token_rotate", request, "accepted", f"token {args.name} rotated")
    until = "" if info.expires_ts is None else f", valid until {_when(info.expires_ts, '')}"
    print(
        f"{info.role} token {args.name!r} rotated in {path}: the old secret is revoked{until};"
        " the new one is shown only once:"
    )
    print(secret)
    return 0
