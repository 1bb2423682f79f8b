"""The `resilience drill`, `resilience survival` and `resilience cap-alert` subcommands.

Argument definitions and handlers for `resilience.cli.COMMANDS`; each handler
imports what it needs when it runs, so the CLI stays quick to start.

- ``drill SCENARIO [--out DIR] [--speed max|N] [--duration SPAN]``: runs
  ``python -m firmware_sim.drill`` as a child (resilience never imports
  firmware_sim) and passes its exit code through: 0 passed, 1 failed, 2 bad
  scenario.
- ``survival --config FILE --load-profile CSV --hours H [--out DIR]``: the
  outage survival analysis (`resilience.drills.survival`); JSON on stdout,
  survival.json and survival.html in DIR.
- ``cap-alert FILE [--drill] [--now TIME] [--api URL --token TOKEN]``: reads a
  CAP 1.2 alert and prints the storm-watch decision as JSON; with ``--api`` it
  waits until the planned-island time and asks the running controller for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

DEFAULT_PROFILE = "config/profile_moda_year.csv"


# ---------------------------------------------------------------- drill
def drill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    parser.add_argument(
        "--out", metavar="DIR", help="report directory (default var/drills/SCENARIO-NAME)"
    )
    parser.add_argument(
        "--speed",
        default="max",
        metavar="max|N",
        help="max: virtual clock, as fast as possible (default); 1: real time over Modbus TCP"
        " with the API and tablet UI (a live training drill); N: virtual clock at N x real time",
    )
    parser.add_argument("--duration", metavar="SPAN", help="stop early, e.g. 6h")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def drill_command(args: argparse.Namespace) -> list[str]:
    """The child command line that runs the drill (firmware_sim's runner)."""
    command = [sys.executable, "-m", "firmware_sim.drill", args.scenario, "--speed", args.speed]
    if args.out:
        command += ["--out", args.out]
    if args.duration:
        command += ["--duration", args.duration]
    if args.quiet:
        command.append("--quiet")
    return command


def drill(args: argparse.Namespace, extra: list[str]) -> int:
    from resilience import cli

    return cli.runner(drill_command(args))


# ---------------------------------------------------------------- survival
def survival_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/site.toml", metavar="FILE", help="site file")
    parser.add_argument(
        "--load-profile",
        default=DEFAULT_PROFILE,
        metavar="CSV",
        help=f"hourly load and PV profile (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--hours", type=int, default=72, metavar="H", help="longest outage [h] (default 72)"
    )
    parser.add_argument(
        "--start-soc",
        type=float,
        default=80.0,
        metavar="PCT",
        help="vehicles' state of charge when an outage starts [%%] (default 80)",
    )
    parser.add_argument("--out", metavar="DIR", default="var/survival", help="report directory")


def survival(args: argparse.Namespace, extra: list[str]) -> int:
    from resilience.config import ConfigError, load_site
    from resilience.drills.report import write_survival_report
    from resilience.drills.survival import ProfileError, analyse, load_profile

    try:
        site = load_site(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        profile = load_profile(args.load_profile)
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not 1 <= args.hours <= len(profile.hour):
        print(
            f"--hours: {args.hours} is outside 1..{len(profile.hour)} (the profile's length)",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.start_soc <= 100:
        print(f"--start-soc: {args.start_soc} is outside 0..100", file=sys.stderr)
        return 2
    result = analyse(site, profile, args.hours, start_soc_pct=args.start_soc)
    from pathlib import Path

    json_path, html_path = write_survival_report(result, Path(args.out))
    summary = {k: v for k, v in result.items() if k not in ("vehicles", "assumptions")}
    print(json.dumps(summary))
    print(f"survival: {json_path} {html_path}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- cap-alert
def cap_alert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="CAP 1.2 alert (XML)")
    parser.add_argument(
        "--drill", action="store_true", help="act on status Exercise too (during a drill)"
    )
    parser.add_argument(
        "--now", metavar="TIME", help="judge the alert as at this ISO 8601 time (default: now)"
    )
    parser.add_argument(
        "--lead-min",
        type=float,
        default=30.0,
        metavar="MIN",
        help="island this many minutes before the onset (default 30)",
    )
    parser.add_argument(
        "--api",
        metavar="URL",
        help="the controller's API, e.g. http://127.0.0.1:8080: wait and"
        " request the planned island there at the right time",
    )
    parser.add_argument("--token", metavar="TOKEN", help="API token (role responder or above)")


def cap_alert(args: argparse.Namespace, extra: list[str]) -> int:
    from resilience.cap import CapError, load_cap
    from resilience.policies.storm import storm_watch

    try:
        alert = load_cap(args.file)
    except CapError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.now:
        try:
            now_dt = datetime.fromisoformat(args.now)
        except ValueError:
            print(f"--now: {args.now!r} is not an ISO 8601 time", file=sys.stderr)
            return 2
        if now_dt.tzinfo is None:
            print("--now: give a UTC offset, e.g. 2025-01-15T06:10:00+03:00", file=sys.stderr)
            return 2
        now = now_dt.timestamp()
    else:
        now = time.time()
    watch = storm_watch(alert, now, exercise=args.drill, lead_s=args.lead_min * 60)

    def iso(ts: float | None) -> str | None:
        return None if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat()

    print(
        json.dumps(
            {
                "file": args.file,
                "identifier": alert.identifier,
                "status": alert.status,
                "msg_type": alert.msg_type,
                "storm_watch": watch.active,
                "reason": watch.reason,
                "charge_to_full": watch.charge_to_full,
                "onset": iso(watch.onset_wall),
                "expires": iso(watch.expires_wall),
                "planned_island_at": iso(watch.island_at_wall),
            }
        )
    )
    if not (watch.active and args.api and watch.island_at_wall is not None):
        return 0
    if not args.token:
        print("--api needs --token", file=sys.stderr)
        return 2
    return _request_island(args.api, args.token, watch.island_at_wall, now)


def _request_island(api: str, token: str, at_wall: float, now: float) -> int:
    """Wait until `at_wall`, then POST the planned-island command to the controller's API."""
    import urllib.error
    import urllib.request

    wait = at_wall - now
    if wait > 0:
        print(f"cap-alert: requesting a planned island in {wait / 60:.0f} min", file=sys.stderr)
        time.sleep(wait)
    request = urllib.request.Request(
        api.rstrip("/") + "/api/v1/commands/planned-island",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        data=b"{}",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            print(reply.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        print(f"cap-alert: the controller answered {exc.code}: {exc.read()!r}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cap-alert: cannot reach {api}: {exc}", file=sys.stderr)
        return 1
    return 0
