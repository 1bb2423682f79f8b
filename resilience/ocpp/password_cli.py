"""`resilience ocpp-password`: the hash line of a station's Basic Auth password.

The password is read from standard input (``--password-stdin``, one line) or asked for
twice with getpass; the output is the line to paste into the site file::

    [devices.<id>.ocpp]
    password_hash = "scrypt$16384$8$1$..."
"""

from __future__ import annotations

import argparse
import getpass
import sys

from resilience.ocpp.passwords import PasswordError, hash_password


def password_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of a prompt",
    )


def password_command(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("station password (16-40 characters): ")
            again = getpass.getpass("again: ")
        except (EOFError, KeyboardInterrupt):
            print("resilience ocpp-password: no password given", file=sys.stderr)
            return 1
        if password != again:
            print("resilience ocpp-password: the two passwords differ", file=sys.stderr)
            return 1
    try:
        line = hash_password(password)
    except PasswordError as exc:
        print(f"resilience ocpp-password: {exc}", file=sys.stderr)
        return 1
    print(f'password_hash = "{line}"')
    return 0
