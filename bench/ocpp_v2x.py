"""OCPP V2X benchmark: twelve OCPP 2.1 stations following the reference site's Modbus former.

The reference site's Modbus devices (the PCC, the meter, the panels, the grid-forming
bidirectional chargers) and twelve simulated OCPP 2.1 stations (11 kW each, a car on
each) run in this process: the plant, its Modbus TCP servers and the stations'
WebSocket clients. The controller is its own `resilience run` process (its CSMS and API
on free ports), so its CPU and its cycle are its own. Then: a grid loss, the island
(the Modbus former forms, the stations follow on UpdateDynamicSchedule setpoints), a
series of load steps so the setpoints move, and a link cut to one station mid-island.

Measured:
- setpoint RTT: UpdateDynamicSchedule sent -> CALLRESULT, as the controller's driver
  times it (`GET /api/v1/ocpp`)
- setpoint -> power: command sent (the controller's monotonic clock, which is the
  machine's: one CLOCK_MONOTONIC for both processes) -> the plant's measured power
  within 5 % of the setpoint (5 % of a tenth of the rating for setpoints near zero);
  commands replaced before the power got there are not counted
- dead-man fallback: link cut -> the station's plant power at zero export
- cycle jitter: how far apart the controller's successive meter reads are from its
  period, during the island, with the twelve stations and on the same site without them;
  and the controller's own (its cycle start-to-start intervals, /metrics). The simulated
  field (this process: the plant, its Modbus servers and the stations, which on a site
  are devices of their own) and the controller are pinned to a core each (`--no-pin` to
  let them share), so the ratio is the controller's, not the simulator's CPU appetite
- LocalFrequency (a third run: the formers droop 1 Hz, the stations declare
  `local_frequency`): the controller is SIGKILLed mid-island, so every station loses its
  link; takeover is kill -> each station on its LocalFrequency curve (the dead-man's
  `max_offline_duration_s` plus a tick), and the share error is, 3 s later and for 5 s,
  |P_station / share - P_former / rating| in % (0: the droop's proportional sharing
  exactly; the rest is the stations' 1 s response and ramp). The run ends inside the
  LocalFrequency window (`local_frequency_offline_s`, 60 s): after it the stations go
  Idle and the former is alone, the dead-man's case (tests/ocpp/test_controller_killed.py)

The simulated devices answer after their families' realistic response latencies
(docs/registers.md, "Device response times"); `--instant` answers at once, as before
they had latencies, to compare. The JSON says which (`latencies`).

    .venv/bin/python bench/ocpp_v2x.py [--island-s 20] [--stations 12] [--instant] [--no-pin]

Prints figures, then one line of JSON with stations, setpoint_rtt_p50_ms,
setpoint_rtt_p99_ms, setpoint_to_power_p99_ms, deadman_fallback_s,
cycle_jitter_p99_ms, cycle_jitter_p99_ms_modbus_only, jitter_ratio,
local_frequency_takeover_s_max, local_frequency_share_error_p99_pct, safety_violations.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ocpp.messages  # noqa: E402
from islanding import percentile, stop_process, to_toml, wait_for  # noqa: E402

from firmware_sim.server import SimSite  # noqa: E402
from resilience.config import load_site  # noqa: E402
from resilience.model import BreakerPosition  # noqa: E402
from resilience.ocpp.passwords import hash_password  # noqa: E402
from resilience.service import quiet_pymodbus  # noqa: E402

RATING_W = 11000.0
CAPACITY_WH = 77400.0
LF_DROOP_HZ = 1.0
LF_ISLAND_S = 5.0


@dataclass
class Samples:
    """Plant power per station, sampled on this process's monotonic clock."""

    times: list[float] = field(default_factory=list)
    power: dict[str, list[float]] = field(default_factory=dict)
    meter_reads: list[float] = field(default_factory=list)


def bench_document(tmp: Path, stations: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The reference site with its OCPP stations replaced by `stations` new ones."""
    data = tomllib.loads((ROOT / "config" / "site.toml").read_text(encoding="utf-8"))
    data["site"]["store_path"] = str(tmp / "bench.sqlite")
    data["grid"]["return_to_service_s"] = 1.0
    data["ocpp"] = {**data.get("ocpp", {}), "port": 0}
    data["api"] = {"host": "127.0.0.1", "port": 0}
    devices = {n: d for n, d in data["devices"].items() if d.get("driver") != "ocpp"}
    dropped = set(data["devices"]) - set(devices)
    data["vehicles"] = [v for v in data["vehicles"] if v.get("charger") not in dropped]
    passwords: dict[str, str] = {}
    for i in range(1, stations + 1):
        name = f"ocpp_{i}"
        identity = f"BENCH-DC-{i:02d}"
        password = secrets.token_urlsafe(18)
        passwords[identity] = password
        devices[name] = {
            "driver": "ocpp",
            "rating_w": RATING_W,
            "role": "follower",
            "ocpp": {"identity": identity, "password_hash": hash_password(password)},
        }
        data["vehicles"].append(
            {
                "id": f"bench_car_{i}",
                "name": f"Bench car {i}",
                "charger": name,
                "capacity_wh": CAPACITY_WH,
                "reserve_soc_pct": 30.0,
            }
        )
    data["devices"] = devices
    return data, passwords


def local_frequency(data: dict[str, Any]) -> dict[str, Any]:
    """The same site with drooping formers and LocalFrequency-capable stations."""
    devices = {
        name: {**device, "droop_hz": LF_DROOP_HZ}
        if device.get("can_form")
        else {**device, "ocpp": {**device["ocpp"], "local_frequency": True}}
        if device.get("driver") == "ocpp"
        else device
        for name, device in data["devices"].items()
    }
    return {**data, "devices": devices}


def modbus_only(data: dict[str, Any]) -> dict[str, Any]:
    devices = {n: d for n, d in data["devices"].items() if d.get("driver") != "ocpp"}
    dropped = set(data["devices"]) - set(devices)
    vehicles = [v for v in data["vehicles"] if v.get("charger") not in dropped]
    return {**data, "devices": devices, "vehicles": vehicles}


def _announced(log_path: Path, pattern: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(pattern, log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"the controller never announced {pattern!r}:\n{log_path.read_text()}")


def _metrics(api: str, token: str) -> dict[str, float]:
    request = urllib.request.Request(
        f"{api}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        text = reply.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line:
            name, _, value = line.rpartition(" ")
            if "{" not in name:
                values[name] = float(value)
    return values


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


async def one_run(
    tmp: Path,
    data: dict[str, Any],
    passwords: dict[str, str],
    island_s: float,
    *,
    kill_for_local_frequency: bool = False,
    instant: bool = False,
) -> dict[str, Any]:
    """One controller process against the simulated site: grid loss, island, steps, cut
    (or, `kill_for_local_frequency`, the controller killed: `_after_kill`)."""
    label = "lf" if kill_for_local_frequency else "ocpp" if passwords else "modbus"
    site_path = tmp / f"{label}-site.toml"
    site_path.write_text(to_toml(data), encoding="utf-8")
    config = load_site(site_path)
    samples = Samples()
    async with SimSite(config, bind_free_ports=True, instant=instant) as site:
        meter = site.devices[config.grid.meter]
        meter_read = meter.read

        def on_meter_read(address: int, count: int) -> Any:
            samples.meter_reads.append(time.monotonic())
            return meter_read(address, count)

        meter.read = on_meter_read  # type: ignore[method-assign]
        run_data = {
            **data,
            "devices": {
                name: {**device, "port": site.ports[name]} if name in site.ports else device
                for name, device in data["devices"].items()
            },
        }
        run_path = tmp / f"{label}-run.toml"
        run_path.write_text(to_toml(run_data), encoding="utf-8")
        token = subprocess.run(
            [sys.executable, "-m", "resilience.cli", "token", "create", "--role", "responder",
             "--name", f"bench-{label}", "--config", str(run_path)],
            cwd=str(ROOT), check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        log_path = tmp / f"{label}-controller.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "resilience.cli", "run", "--config", str(run_path)],
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if CORES is not None:
            os.sched_setaffinity(proc.pid, {CORES[1]})
        plant = site.plant
        try:
            api = await asyncio.to_thread(
                _announced, log_path, r"API and tablet UI at (http://\S+?)/?\s", 30
            )
            if passwords:
                url = await asyncio.to_thread(
                    _announced, log_path, r"OCPP central system at (ws://\S+?)/<identity>", 30
                )
                await site.start_stations(url, passwords)
                if not await wait_for(
                    lambda: all(st.booted for st in site.stations.values()), 30
                ):
                    raise RuntimeError("not every station booted")
            if not await wait_for(lambda: len(samples.meter_reads) > 100, 30):
                raise RuntimeError("controller did not start")
            sampler = asyncio.create_task(_sample(site, samples))
            await asyncio.sleep(2.0)
            plant.set_pv_available(0.0)  # night: the cars carry the island
            plant.grid_loss()
            if not await wait_for(
                lambda: plant.breaker_position is BreakerPosition.OPEN and plant.bus_live, 10
            ):
                raise RuntimeError("no island")
            island_from = time.monotonic()
            period = config.site.cycle_period_s
            loads = [load.id for load in config.loads if load.supply == "bus"]
            step_at = island_from
            for i in itertools.count():
                if time.monotonic() - island_from > island_s:
                    break
                await asyncio.sleep(0.05)
                if time.monotonic() - step_at >= 1.5:
                    step_at = time.monotonic()
                    factor = (0.6, 1.0, 0.8, 1.2)[i % 4]
                    for load in loads:
                        plant.set_load_factor(load, factor)
            island_to = time.monotonic()
            # the controller's own view of its cycle (its last 500 start-to-start intervals)
            metrics = await asyncio.to_thread(_metrics, api, token)
            own_p99_ms = (metrics["resilience_cycle_interval_p99_seconds"] - period) * 1000
            deadman: float | None = None
            lf: dict[str, Any] = {}
            if kill_for_local_frequency:
                lf = await _after_kill(proc, site)
            elif passwords:
                exporting = sorted(
                    (name for name in site.stations if plant.charger_power_w(name) > 100),
                    key=plant.charger_power_w,
                )
                if exporting:
                    cut = site.stations[exporting[-1]]
                    cut.cut_link()
                    await wait_for(lambda: cut.model.deadman_fallback_s is not None, 30)
                    deadman = cut.model.deadman_fallback_s
                    await asyncio.sleep(1.0)
            ocpp_status = (
                _get(f"{api}/api/v1/ocpp", token)
                if passwords and not kill_for_local_frequency
                else {"stations": []}
            )
            sampler.cancel()
            reads = [t for t in samples.meter_reads if island_from <= t <= island_to]
            jitter = [abs((b - a) - period) * 1000 for a, b in itertools.pairwise(reads)]
            violations = [f"{v.kind}: {v.detail}" for v in plant.violations]
        except BaseException:
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            log.close()
            stop_process(proc)
    rtts = [r for s in ocpp_status["stations"] for r in s.get("rtt_ms_recent", [])]
    to_power = _setpoint_to_power_ms(ocpp_status, samples, config)
    return {
        "jitter_ms": jitter,
        "own_jitter_p99_ms": own_p99_ms,
        "rtts_ms": rtts,
        "to_power_ms": to_power,
        "deadman_fallback_s": deadman,
        "violations": violations,
        **lf,
    }


async def _after_kill(proc: subprocess.Popen[bytes], site: SimSite) -> dict[str, Any]:
    """SIGKILL the controller mid-island: every station loses its link and, past the
    dead-man, shares the island with the drooping former on its curve."""
    plant = site.plant
    stations = {n: st for n, st in site.stations.items() if st.model.plugged}
    lf_id = 3  # resilience.ocpp.local_frequency.LOCAL_FREQUENCY_PROFILE_ID
    if not await wait_for(lambda: all(lf_id in st.model.profiles for st in stations.values()), 20):
        raise RuntimeError("not every station has its LocalFrequency profile")
    proc.kill()
    killed_s = plant.time_s

    def taken_over() -> bool:
        return all(
            (st.model.local_frequency_since_s or -1.0) >= killed_s for st in stations.values()
        )

    if not await wait_for(taken_over, 30):
        raise RuntimeError("not every station went to LocalFrequency")
    takeover = [(st.model.local_frequency_since_s or 0.0) - killed_s for st in stations.values()]
    await asyncio.sleep(3.0)  # the stations' 1 s frequency-watt response settles
    errors: list[float] = []
    former_pct: list[float] = []
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        formers = plant.former_ids
        if len(formers) == 1:
            former = plant.chargers[formers[0]]
            loaded = former.power_w / former.rating_w
            former_pct.append(loaded * 100)
            for name, st in stations.items():
                profile = st.model.profiles.get(lf_id)
                share = -(profile.period.discharge_limit or 0.0) if profile else 0.0
                if share > 0 and st.model.in_local_frequency():
                    errors.append(abs(plant.charger_power_w(name) / share - loaded) * 100)
        await asyncio.sleep(0.05)
    return {
        "lf_takeover_s": takeover,
        "lf_share_error_pct": errors,
        "lf_former_load_pct": former_pct,
        "lf_bus_frequency_hz": plant.bus_frequency_hz,
    }


async def _sample(site: SimSite, samples: Samples) -> None:
    names = list(site.stations)
    for name in names:
        samples.power[name] = []
    while True:
        samples.times.append(time.monotonic())
        for name in names:
            samples.power[name].append(site.plant.charger_power_w(name))
        await asyncio.sleep(0.01)  # the plant moves every 10 ms (SimSite's ticker)


def _setpoint_to_power_ms(status: dict[str, Any], samples: Samples, config: Any) -> list[float]:
    """Per command: sent -> the plant's power within 5 % of it, unless replaced first."""
    out: list[float] = []
    for station in status["stations"]:
        name = station["device"]
        if name not in samples.power:
            continue
        power = samples.power[name]
        rating = config.devices[name].rating_w or RATING_W
        commands = station.get("commands_recent", [])
        for command, following in itertools.zip_longest(commands, commands[1:]):
            sent, setpoint = command["sent_s"], command["setpoint_w"]
            until = following["sent_s"] if following else samples.times[-1]
            tolerance = 0.05 * max(abs(setpoint), rating / 10)
            for t, p in zip(samples.times, power, strict=True):
                if t < sent:
                    continue
                if t > until:
                    break
                if abs(p - setpoint) <= tolerance:
                    out.append((t - sent) * 1000)
                    break
    return out


CORES: tuple[int, int] | None = None
"""(the simulated field's core, the controller's core) when pinned (`--pin`)."""


def pin() -> tuple[int, int] | None:
    """On a site the twelve stations, the meter and the breakers are devices of their own,
    not programs on the gateway: the simulated field (this process) and the controller get
    a core each, so that what is measured is the controller's cycle, not how much CPU the
    simulator takes from it. None with fewer than two cores to choose from."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    os.sched_setaffinity(0, {cores[0]})
    return cores[0], cores[1]


async def run(island_s: float, stations: int, *, instant: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="resilience-bench-ocpp-"))
    data, passwords = bench_document(tmp, stations)
    baseline = await one_run(tmp, modbus_only(data), {}, island_s, instant=instant)
    with_stations = await one_run(tmp, data, passwords, island_s, instant=instant)
    lf = await one_run(
        tmp,
        local_frequency(data),
        passwords,
        LF_ISLAND_S,
        kill_for_local_frequency=True,
        instant=instant,
    )
    p99 = percentile(with_stations["jitter_ms"], 99)
    p99_base = percentile(baseline["jitter_ms"], 99)
    return {
        "latencies": "instant" if instant else "realistic",
        "stations": stations,
        "pinned_cores": list(CORES) if CORES is not None else None,
        "setpoint_rtt_p50_ms": round(percentile(with_stations["rtts_ms"], 50), 2),
        "setpoint_rtt_p99_ms": round(percentile(with_stations["rtts_ms"], 99), 2),
        "setpoints_timed": len(with_stations["rtts_ms"]),
        "setpoint_to_power_p50_ms": round(percentile(with_stations["to_power_ms"], 50), 1),
        "setpoint_to_power_p99_ms": round(percentile(with_stations["to_power_ms"], 99), 1),
        "setpoints_reached": len(with_stations["to_power_ms"]),
        "deadman_fallback_s": with_stations["deadman_fallback_s"],
        "cycle_jitter_p50_ms": round(percentile(with_stations["jitter_ms"], 50), 2),
        "cycle_jitter_p99_ms": round(p99, 2),
        "cycle_jitter_p99_ms_modbus_only": round(p99_base, 2),
        "jitter_ratio": round(p99 / p99_base, 2) if p99_base > 0 else None,
        "controller_jitter_p99_ms": round(with_stations["own_jitter_p99_ms"], 2),
        "controller_jitter_p99_ms_modbus_only": round(baseline["own_jitter_p99_ms"], 2),
        "controller_jitter_ratio": round(
            with_stations["own_jitter_p99_ms"] / baseline["own_jitter_p99_ms"], 2
        )
        if baseline["own_jitter_p99_ms"] > 0
        else None,
        "local_frequency_takeover_s_max": round(max(lf["lf_takeover_s"]), 3),
        "local_frequency_share_error_p50_pct": round(percentile(lf["lf_share_error_pct"], 50), 2),
        "local_frequency_share_error_p99_pct": round(percentile(lf["lf_share_error_pct"], 99), 2),
        "local_frequency_former_load_pct": round(percentile(lf["lf_former_load_pct"], 50), 1),
        "local_frequency_bus_hz": round(lf["lf_bus_frequency_hz"], 3),
        "safety_violations": with_stations["violations"]
        + baseline["violations"]
        + lf["violations"],
    }


def main() -> None:
    quiet_pymodbus()
    # The simulated stations validate inline, as the controller does (resilience run):
    # a validation thread per message contends for the GIL with the plant and its servers.
    ocpp.messages.ASYNC_VALIDATION = False
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--island-s", type=float, default=20.0)
    parser.add_argument("--stations", type=int, default=12)
    parser.add_argument(
        "--instant", action="store_true", help="simulated devices answer at once (to compare)"
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="share the cores between the simulated field and the controller",
    )
    args = parser.parse_args()
    global CORES
    CORES = None if args.no_pin else pin()
    result = asyncio.run(run(args.island_s, max(1, args.stations), instant=args.instant))
    print(
        f"\n{result['stations']} stations: setpoint RTT p50 {result['setpoint_rtt_p50_ms']} ms,"
        f" p99 {result['setpoint_rtt_p99_ms']} ms; setpoint -> power p99"
        f" {result['setpoint_to_power_p99_ms']} ms; dead-man {result['deadman_fallback_s']} s;"
        f" cycle jitter p99 {result['cycle_jitter_p99_ms']} ms"
        f" (Modbus only {result['cycle_jitter_p99_ms_modbus_only']} ms);"
        f" LocalFrequency takeover {result['local_frequency_takeover_s_max']} s, share error"
        f" p99 {result['local_frequency_share_error_p99_pct']} %;"
        f" safety violations: {len(result['safety_violations'])}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
