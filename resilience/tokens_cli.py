"""`resilience token create|revoke|list`: API tokens in the store the site file names.

The store path comes from the site file (`site.store_path`, relative to the
working directory), so a token made while `resilience run` serves that site
works at once: the API looks tokens up per request. Every change is written to
the audit trail (`commands` table) as actor `cli:USER`, role `admin` (whoever
can run this on the gateway can read the database anyway), and committed
before the command reports success. `create` prints the token once, as the last
word of its output; only its SHA-256 is kept.
"""

from __future__ import annotations

import argparse
import getpass
import time

from resilience.auth import TokenError, TokenStore
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
            for info in tokens.list():
                created = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created_ts))
                print(f"{info.name:<24} {info.role:<10} created {created} by {info.created_by}")
            return 0
        if args.action == "create":
            request = {"name": args.name, "role": args.role}
            try:
                secret = tokens.create(args.name, args.role, by=_actor())
            except TokenError as exc:
                _audit(path, "token_create", request, "refused", str(exc))
                print(f"resilience token: {exc}")
                return 1
            _audit(path, "token_create", request, "accepted", f"{args.role} token {args.name}")
            print(f"{args.role} token {args.name!r} created in {path}; it is shown only once:")
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
