"""What a drill decided, as one fingerprint per site size: to compare two versions' decisions.

    .venv/bin/python bench/drill_outcome.py [--sizes reference,large] [--duration-h H] [--out F]

A speed-up of the drill (issue 14) must not change a single decision. This runs the
72 h earthquake drill of `bench/drill_speed.py` on each size and prints, per size, the
cycles (and fast ones), transitions, alarms, commands, dispatch notes, energies to the
watt-hour, safety violations and a SHA-256 of the whole report less its wall times
(`outcome_sha256`: the sampled series and every relay switching included). Run it on two
checkouts (`python /path/to/other/bench/drill_outcome.py` imports that checkout's code) and
compare the lines: equal fingerprints mean the same drill to the last sample. `--out`
writes the full outcomes as JSON, to diff when they differ.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from drill_speed import SCENARIO, scenario_for  # noqa: E402

from firmware_sim.drill import run_max  # noqa: E402

WALL = ("wall_seconds", "speedup")


def outcome(size: str, duration_s: float | None) -> dict[str, Any]:
    """The drill's report on `size` without its wall times, and its fingerprint."""
    with tempfile.TemporaryDirectory() as tmp:
        loaded = scenario_for(size, SCENARIO, Path(tmp))
        with tempfile.TemporaryDirectory() as out:
            report = asyncio.run(run_max(loaded, Path(out), progress=False, duration_s=duration_s))
    for key in WALL:
        report.pop(key, None)
    report["scenario"].pop("file", None)  # paths differ between checkouts
    report["scenario"].pop("site", None)
    text = json.dumps(report, sort_keys=True, default=str)
    report["outcome_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "cycles": report["control_steps"],
        "fast": report["control_steps_fast"],
        "transitions": len(report["transitions"]),
        "alarms": len(report["alarms"]),
        "commands": len(report["commands"]),
        "notes": report["dispatch_notes"],
        "served_kwh": report["served_kwh"],
        "unserved_kwh": report["unserved_kwh"],
        "violations": len(report["safety_violations"]),
        "outcome_sha256": report["outcome_sha256"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="reference,large", help="as bench/drill_speed.py")
    parser.add_argument("--duration-h", type=float, default=None, help="cut the drill short")
    parser.add_argument("--out", default=None, help="write the full outcomes here (JSON)")
    args = parser.parse_args()
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    duration_s = args.duration_h * 3600 if args.duration_h is not None else None
    full: dict[str, Any] = {}
    for size in (s.strip() for s in args.sizes.split(",") if s.strip()):
        full[size] = outcome(size, duration_s)
        print(json.dumps({size: summary(full[size])}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(full, indent=1, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
