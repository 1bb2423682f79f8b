"""The `resilience` command: one subcommand per operator task.

Subcommands live in `COMMANDS`, a dict from name to `Command` (how to add its
arguments, and the handler that runs it and returns the exit code). Adding one,
for example `run`, `drill`, `token` or `survival`, is one entry there; a handler
imports what it needs itself, so `check-config` stays fast and light.

    resilience check-config FILE      validate a site file; one line per problem
    resilience sim [--config FILE]    the simulated devices of a site (firmware_sim)
    resilience run [--config FILE]    the controller, against the site's devices

Exit codes: 0 success, 1 the task failed (an invalid site file, say), 2 a usage
error; a child process's own code is passed through (128 + N when signal N
ended it, as a shell reports it).

`resilience` never imports `firmware_sim`: `sim` starts it as its own process,
`python -m firmware_sim`, and passes the remaining arguments through.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

DEFAULT_CONFIG = "config/site.toml"

Handler = Callable[[argparse.Namespace, list[str]], int]
"""Runs a subcommand: parsed arguments, the arguments left over (only for a
command that passes them through), and returns the exit code."""


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, how to add its arguments, and its handler."""

    help: str
    handler: Handler
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    passthrough: bool = False  # unknown arguments go to the handler instead of an error


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The `--config FILE` option every site-level subcommand shares."""
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"site file (default: {DEFAULT_CONFIG})",
    )


# ---------------------------------------------------------------- check-config


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="site file (TOML) to validate")


def check_config(args: argparse.Namespace, extra: list[str]) -> int:
    """Print "FILE: ok (...)" and return 0, or one "file: key: reason" line per problem and 1."""
    from resilience.config import ConfigError, load_site

    file: str = args.file
    try:
        site = load_site(file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    print(
        f"{file}: ok ({len(site.devices)} devices, {len(site.loads)} loads,"
        f" {len(site.vehicles)} vehicles)"
    )
    return 0


# ---------------------------------------------------------------- sim


def sim_command(config: str, extra: Sequence[str]) -> list[str]:
    """The command line that starts the simulated devices of the site in `config`."""
    return [sys.executable, "-m", "firmware_sim", "--config", config, *extra]


def run_child(command: Sequence[str]) -> int:
    """Run `command` to its end and return its exit code, as a shell would report it.

    SIGTERM and SIGHUP sent to this process are passed on to the child, so
    stopping `resilience sim` stops the simulator too. SIGINT is not passed on
    while the child runs: a Ctrl-C at the terminal already reaches the whole
    foreground process group, the child included, and sending a second one would
    interrupt its shutdown.
    """
    children: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []  # signals that came before the child existed

    def forward(signum: int, frame: FrameType | None) -> None:
        if not children:
            pending.append(signum)
        elif children[0].poll() is None:
            children[0].send_signal(signum)

    forwarded = (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in forwarded}
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = subprocess.Popen(list(command))
        children.append(child)
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        previous[signal.SIGINT] = previous_int
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)
    return 128 - code if code < 0 else code


Runner = Callable[[Sequence[str]], int]
runner: Runner = run_child
"""How `sim` starts its child; a test may swap it to see the command line."""


def sim(args: argparse.Namespace, extra: list[str]) -> int:
    """Start firmware_sim for the site in --config; other arguments pass through."""
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return runner(sim_command(args.config, extra))


# ---------------------------------------------------------------- run


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the controller against the devices of the site in --config until SIGINT/SIGTERM."""
    import asyncio
    import logging

    from resilience.config import ConfigError, load_site
    from resilience.service import serve

    try:
        site = load_site(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(site))


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--verbose", action="store_true", help="debug logging")


# ---------------------------------------------------------------- token


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token; it is printed once, last")
    create.add_argument(
        "--role", required=True, choices=("viewer", "responder", "operator", "admin")
    )
    create.add_argument("--name", required=True, help="who or what holds it, e.g. tablet-hall")
    create.add_argument(
        "--expires",
        metavar="DURATION",
        help="lifetime, e.g. 90m, 12h, 30d, 2w (default: until revoked)",
    )
    create.add_argument(
        "--link",
        action="store_true",
        help="also print the tablet UI's signed-in link and its QR code",
    )
    create.add_argument(
        "--lan-host",
        metavar="HOST",
        help="the gateway's address in the link when [api] listens on 0.0.0.0 or ::"
        " (default: this host's name.local)",
    )
    add_config_argument(create)
    revoke = actions.add_parser("revoke", help="revoke a token by name; it stops working at once")
    revoke.add_argument("name", metavar="NAME")
    add_config_argument(revoke)
    rotate = actions.add_parser(
        "rotate", help="a new secret for a token (same name and role); the old one is revoked"
    )
    rotate.add_argument("name", metavar="NAME")
    rotate.add_argument(
        "--expires",
        metavar="DURATION",
        help="lifetime of the new secret (default: as long as the old one was given)",
    )
    add_config_argument(rotate)
    listing = actions.add_parser(
        "list", help="list live tokens: name, role, created, expires, last used"
    )
    add_config_argument(listing)


def token(args: argparse.Namespace, extra: list[str]) -> int:
    """API tokens in the store the site file names; every change is audited there."""
    from resilience.tokens_cli import token_command

    return token_command(args)


# ---------------------------------------------------------------- tls-cert


def _tls_cert_arguments(parser: argparse.ArgumentParser) -> None:
    from resilience.tls_cli import tls_cert_arguments

    tls_cert_arguments(parser)


def tls_cert(args: argparse.Namespace, extra: list[str]) -> int:
    """The API's TLS certificate: the site file's, checked, or a self-signed one made."""
    from resilience.tls_cli import tls_cert_command

    return tls_cert_command(args)


# ---------------------------------------------------------------- ocpp-password


def _ocpp_password_arguments(parser: argparse.ArgumentParser) -> None:
    from resilience.ocpp.password_cli import password_arguments

    password_arguments(parser)


def ocpp_password(args: argparse.Namespace, extra: list[str]) -> int:
    """The hash line of an OCPP station's Basic Auth password, for the site file."""
    from resilience.ocpp.password_cli import password_command

    return password_command(args)


# ---------------------------------------------------------------- drill, survival, cap-alert


def _planning() -> Any:
    from resilience.planning import commands

    return commands


def _drills() -> Any:
    """`resilience.drills.commands`: drill, survival and cap-alert (imported when used)."""
    from resilience.drills import commands

    return commands


# ---------------------------------------------------------------- eoc


def _eoc_arguments(parser: argparse.ArgumentParser) -> None:
    from resilience.eoc.cli import eoc_arguments

    eoc_arguments(parser)


def eoc(args: argparse.Namespace, extra: list[str]) -> int:
    """The city's emergency desk: every shelter's state from the MQTT broker (issue 15)."""
    from resilience.eoc.cli import eoc_command

    return eoc_command(args)


# ---------------------------------------------------------------- the parser

COMMANDS: dict[str, Command] = {
    "run": Command(
        help="run the controller against the devices of a site file",
        handler=run,
        add_arguments=_run_arguments,
    ),
    "check-config": Command(
        help="validate a site file and print every problem found",
        handler=check_config,
        add_arguments=_check_config_arguments,
    ),
    "token": Command(
        help="create, rotate, revoke or list API tokens (in the store the site file names)",
        handler=token,
        add_arguments=_token_arguments,
    ),
    "tls-cert": Command(
        help="check the API's TLS certificate, or make a self-signed one for this gateway"
        " and add it to the site file; prints its SHA-256 fingerprint",
        handler=tls_cert,
        add_arguments=_tls_cert_arguments,
    ),
    "ocpp-password": Command(
        help="hash an OCPP station's Basic Auth password for [devices.<id>.ocpp] password_hash",
        handler=ocpp_password,
        add_arguments=_ocpp_password_arguments,
    ),
    "drill": Command(
        help="run a drill scenario against the simulated site; exit 0 pass, 1 fail, 2 bad file",
        handler=lambda args, extra: _drills().drill(args, extra),
        add_arguments=lambda parser: _drills().drill_arguments(parser),
    ),
    "survival": Command(
        help="outage survival analysis over a year-long hourly load and PV profile",
        handler=lambda args, extra: _drills().survival(args, extra),
        add_arguments=lambda parser: _drills().survival_arguments(parser),
    ),
    "cap-alert": Command(
        help="read a CAP 1.2 alert and print the storm-watch decision (optionally act on it)",
        handler=lambda args, extra: _drills().cap_alert(args, extra),
        add_arguments=lambda parser: _drills().cap_alert_arguments(parser),
    ),
    "eoc": Command(
        help="the city's emergency desk: every shelter's state and events from the MQTT"
        " broker, a web view and API, commands to a site or a district",
        handler=eoc,
        add_arguments=_eoc_arguments,
    ),
    "plan": Command(
        help="size a shelter's chargers, outlets and PV against survival targets"
        " (docs/planning.md); exit 2 for a bad plan file, 3 without the plan extra",
        handler=lambda args, extra: _planning().plan(args, extra),
        add_arguments=lambda parser: _planning().plan_arguments(parser),
    ),
    "sim": Command(
        help="run the simulated devices of a site (firmware_sim); other arguments"
        " (--control-port, --free-ports, ...) are passed to it",
        handler=sim,
        add_arguments=add_config_argument,
        passthrough=True,
    ),
}


def build_parser(commands: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of `commands` (default `COMMANDS`)."""
    parser = argparse.ArgumentParser(
        prog="resilience",
        description="Disaster-resilience microgrid controller.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in (commands if commands is not None else COMMANDS).items():
        # No abbreviations: `sim` passes unknown options through, and an
        # abbreviation could swallow one of them (--con for --control-port).
        sub = subparsers.add_parser(
            name, help=command.help, description=command.help, allow_abbrev=False
        )
        command.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `resilience` console script; returns the exit code."""
    parser = build_parser()
    arguments = sys.argv[1:] if argv is None else argv
    try:
        args, extra = parser.parse_known_args(arguments)
        command = COMMANDS.get(args.command) if args.command else None
        if command is None:
            parser.print_help(sys.stderr)
            return 2
        if extra and not command.passthrough:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse reports usage errors and --help this way
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return command.handler(args, extra)


if __name__ == "__main__":
    sys.exit(main())
