"""Crash recovery: SIGKILL the controller at seeded random moments of an outage drill.

Two processes, as on a gateway: firmware_sim (`python -m firmware_sim --free-ports
--control-port 0`) plays the site and referees it; the controller
(`tests/crash/runner.py`: `resilience.service.start`, no API) is killed with
SIGKILL at least `KILLS` times and started again on the same SQLite store. The
test drives grid loss and return through the simulator's control API so the
kills land in every phase: at random, right after the grid goes (mid-islanding:
`islanding` / `black_start`), and during resynchronisation.

After every restart it checks that the controller
- re-read the field and resumed the mode the plant is in (breaker closed on a live
  grid: grid-connected; breaker open with a formed island: islanded or emergency);
- lost no acknowledged record: every operator command it answered before any
  kill is in the SQLite store;
- never closed the PCC or discharged a vehicle on a stale belief: the plant's
  referee (GET /state) recorded no back-feed, out-of-sync close, reserve breach,
  over-rating, collapse or wrong shed order.

Bounded to about two minutes (`RESILIENCE_CRASH_KILLS` sets the number of kills).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sites import to_toml

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "config" / "site.toml"
KILLS = int(os.environ.get("RESILIENCE_CRASH_KILLS", "50"))
SEED = int(os.environ.get("RESILIENCE_CRASH_SEED", "20261125"))
STABLE = {"grid_connected", "islanded", "emergency"}
WAIT_S = 30.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


class Lines:
    """The JSON lines a child prints, read by a thread into a queue."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.raw: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.raw.append(line)
            try:
                self.queue.put(json.loads(line))
            except ValueError:
                continue

    def next(self, timeout_s: float) -> dict[str, Any] | None:
        try:
            return self.queue.get(timeout=timeout_s)
        except queue.Empty:
            return None


@dataclass
class Controller:
    process: subprocess.Popen[str]
    lines: Lines
    mode: str | None = None
    acked: set[int] = field(default_factory=set)

    def pump(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        message = self.lines.next(timeout_s)
        if message is not None:
            if "mode" in message:
                self.mode = str(message["mode"])
            if "ack" in message:
                self.acked.add(int(message["ack"]))
        return message

    def wait_mode(self, modes: set[str], timeout_s: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while self.mode not in modes:
            if self.process.poll() is not None:
                raise AssertionError(f"controller exited {self.process.returncode}")
            if time.monotonic() > deadline:
                tail = "".join(self.lines.raw[-10:])
                raise AssertionError(f"no mode in {modes} within {timeout_s} s; last:\n{tail}")
            self.pump(0.05)
        assert self.mode is not None
        return self.mode

    def command(self, probe: int) -> None:
        assert self.process.stdin is not None
        # restoring a load nobody shed changes nothing, and is audited like any command
        request = {"id": probe, "command": "restore_load", "args": {"load_id": "lift"}}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        while self.pump(0.0) is not None:  # what it printed before dying still counts
            pass


@contextmanager
def simulator(site_file: Path) -> Iterator[tuple[dict[str, int], str]]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "firmware_sim", "--config", str(site_file)),
            *("--free-ports", "--control-port", "0"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ports: dict[str, int] = {}
        assert process.stdout is not None
        control = ""
        for line in process.stdout:
            if line.startswith("control "):
                control = line.split()[1]
                break
            match = re.match(r"^(\S+) \S+ [\d.]+:(\d+) unit \d+$", line.strip())
            if match:
                ports[match.group(1)] = int(match.group(2))
        assert control, "firmware_sim did not print its control URL"
        yield ports, control
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def start_controller(site_file: Path, store: Path, ports: dict[str, int]) -> Controller:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.runner", str(site_file), str(store), json.dumps(ports)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return Controller(process, Lines(process))


@contextmanager
def stopped_at_exit(controller: Controller) -> Iterator[Controller]:
    """The controller process, killed on the way out if still running (a failed check
    must not leave it running on the machine)."""
    try:
        yield controller
    finally:
        if controller.process.poll() is None:
            controller.process.kill()
            controller.process.wait(10)


def committed_probes(store: Path) -> set[int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT actor FROM commands WHERE actor LIKE 'probe-%'").fetchall()
    return {int(actor.split("-", 1)[1]) for (actor,) in rows}


def check_field(mode: str, state: dict[str, Any], history: list[str] | None = None) -> None:
    """The mode the controller resumed is the one the plant is in. A violation says what the
    field did before it (the plant's log, with `log_tail`) and what the kills were."""
    if state["violations"]:
        log = [f"{e['time_s']:.3f} {e['kind']}: {e['detail']}" for e in state.get("log", [])]
        raise AssertionError(
            f"{state['violations']}\nkills (last 6): {(history or [])[-6:]}\nplant log:\n"
            + "\n".join(log)
        )
    breaker = state["breaker"]["position"]
    if mode == "grid_connected":
        assert breaker == "CLOSED" and state["grid"]["present"], (mode, breaker, state["grid"])
    else:
        assert breaker == "OPEN" and state["bus"]["source"] == "island", (mode, state["bus"])


def test_sigkill_at_random_moments_of_a_drill(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    site_file = tmp_path / "site.toml"
    # The Modbus field only: this is the store's and the mode machine's crash test (the
    # OCPP stations' is tests/ocpp/test_controller_killed.py).
    data = tomllib.loads(SITE.read_text(encoding="utf-8"))
    stations = {n for n, d in data["devices"].items() if d.get("driver") == "ocpp"}
    data["devices"] = {n: d for n, d in data["devices"].items() if n not in stations}
    data["vehicles"] = [v for v in data["vehicles"] if v.get("charger") not in stations]
    data["grid"]["return_to_service_s"] = 1.0
    # slip faster, so a resynchronisation takes seconds, not tens of seconds
    data["sync"]["slip_frequency_hz"] = 0.25
    site_file.write_text(to_toml(data), encoding="utf-8")
    store = tmp_path / "crash.sqlite"
    kills: Counter[str] = Counter()
    acked: set[int] = set()
    probe = 0
    started = time.monotonic()
    with simulator(site_file) as (ports, control), httpx.Client(base_url=control) as http:

        def state() -> dict[str, Any]:
            response = http.get("/state", params={"log_tail": 0})
            response.raise_for_status()
            found = dict(response.json())
            if found["violations"]:  # again, with what led to them
                response = http.get("/state", params={"log_tail": 80})
                response.raise_for_status()
                found = dict(response.json())
            return found

        history: list[str] = []

        for kill in range(KILLS):
            with stopped_at_exit(start_controller(site_file, store, ports)) as controller:
                mode = controller.wait_mode(STABLE)
                check_field(mode, state(), history)
                missing = acked - committed_probes(store)
                assert not missing, f"acknowledged commands lost after a kill: {sorted(missing)}"
                probe += 1
                controller.command(probe)
                strategy = kill % 3
                if strategy == 1:  # mid-islanding: grid goes, kill while the island forms
                    if mode != "grid_connected":
                        http.post("/grid/return")
                        controller.wait_mode({"grid_connected"})
                    http.post("/grid/loss")
                    controller.wait_mode({"islanding", "black_start", "islanded", "emergency"})
                    time.sleep(rng.uniform(0.0, 0.1))
                elif strategy == 2:  # mid-resynchronisation: grid back, kill while slipping
                    if mode == "grid_connected":
                        http.post("/grid/loss")
                        controller.wait_mode({"islanded", "emergency"})
                    http.post("/grid/return")
                    controller.wait_mode({"resynchronising", "grid_connected"})
                    time.sleep(rng.uniform(0.0, 0.5))
                else:  # anywhere: let it run a random while, maybe while the grid changes
                    if rng.random() < 0.5:
                        http.post("/grid/loss" if rng.random() < 0.5 else "/grid/return")
                    time.sleep(rng.uniform(0.05, 1.0))
                controller.pump(0.0)
                history.append(f"#{kill} strategy {strategy}: {mode}, killed {controller.mode}")
                kills[controller.mode or "starting"] += 1
                controller.kill()
                acked |= controller.acked
        # a last start: everything acknowledged is there, the site settles safely
        controller = start_controller(site_file, store, ports)
        try:
            mode = controller.wait_mode(STABLE)
            check_field(mode, state(), history)
        finally:
            controller.kill()
        final = state()
    assert not (acked - committed_probes(store))
    assert len(acked) >= KILLS // 2, f"only {len(acked)} commands acknowledged"
    assert final["violations"] == []
    assert sum(kills.values()) >= KILLS
    # the kills covered the transitions, not only the steady modes
    assert kills["islanding"] + kills["black_start"] > 0, kills
    assert kills["resynchronising"] > 0, kills
    elapsed = time.monotonic() - started
    print(f"{KILLS} kills in {elapsed:.0f} s, modes at kill: {dict(kills)}; {len(acked)} acked")
