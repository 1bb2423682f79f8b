"""The sweep on Dask distributed: a local cluster of 2 workers shared by this module, the
results file a rerun resumes from, and a scheduler and a worker as separate processes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilience import cli
from resilience.drills.survival import load_profile
from resilience.planning.engine import Progress, ResultStore, chunks, open_client, run_sweep
from resilience.planning.plan_file import load_plan
from resilience.planning.sweep import combinations, evaluate, site_kwp

DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with open_client(workers=2) as c:
        yield c


def test_sweep_on_two_workers_then_resumed(client: Any, small_plan: Path, tmp_path: Path) -> None:
    assert len(client.scheduler_info()["workers"]) == 2
    loaded = load_plan(small_plan)
    profile = load_profile(loaded.profile_path)
    store = ResultStore(tmp_path / "plan.sqlite")
    bar = io.StringIO()
    first = run_sweep(loaded, profile, client, store, lambda n: Progress("sweep", n, bar))
    assert first.computed == 6 and store.count("sweep") == 6
    assert bar.getvalue().endswith("6/6\n")
    # the cluster's answers are the pure function's
    combos = combinations(loaded.plan, loaded.site)
    local = evaluate(loaded.plan, loaded.site_doc, profile, site_kwp(loaded.site), combos[3])
    assert {k: v for k, v in first.results[3].items() if k != "key"} == local
    store.close()
    store = ResultStore(tmp_path / "plan.sqlite")
    again = run_sweep(loaded, profile, client, store)
    assert again.computed == 0  # a rerun computes nothing new
    assert again.results == first.results
    # one more value to try: only its combinations are computed
    text = small_plan.read_text(encoding="utf-8").replace(
        "pv_kwp = [0.0, 20.0]", "pv_kwp = [0.0, 20.0, 40.0]"
    )
    small_plan.write_text(text, encoding="utf-8")
    more = run_sweep(load_plan(small_plan), profile, client, store)
    assert more.computed == 3 and len(more.results) == 9
    store.close()


def test_cli_on_a_scheduler(
    client: Any, small_plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["plan", str(small_plan), "--out", str(out), "--scheduler", client.scheduler.address]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["combinations"] == 6 and summary["computed"] == 6
    answer = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert answer["frontier"] == [
        r["key"] for r in answer["results"] if r["key"] in answer["frontier"]
    ]
    cheapest = summary["frontier"][0]
    assert cheapest["targets"][0]["met"]
    assert all(not r["meets"] or r["cost"] >= cheapest["cost"] for r in answer["results"])
    # each frontier combination checked by 2 real drills on the virtual clock
    assert summary["drills"] == summary["drills_run"] == 2 * len(summary["frontier"])
    for entry in summary["frontier"]:
        (row,) = entry["drills"]["targets"]
        assert row["starts"] == 2 and row["drill_pct"] is not None
    checked = [r for r in answer["results"] if "check" in r]
    assert [r["key"] for r in checked] == answer["frontier"]
    assert all(r["check"]["safety_violations"] == 0 for r in checked)
    assert cli.main([*args, "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["computed"] == 0 and again["drills_run"] == 0  # a rerun computes nothing new
    assert again["frontier"] == summary["frontier"]


def test_scheduler_and_worker_as_separate_processes(small_plan: Path, tmp_path: Path) -> None:
    from distributed import Client

    text = small_plan.read_text(encoding="utf-8")
    small_plan.write_text(text.replace("drills_per_combination = 2", "drills_per_combination = 0"))
    file = tmp_path / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    scheduler = subprocess.Popen(
        [
            str(DASK),
            "scheduler",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(file),
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [str(DASK), "worker", "--scheduler-file", str(file), "--nthreads", "1", *common],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Client(scheduler_file=str(file), timeout=60) as c:
            c.wait_for_workers(1, timeout=60)
            address = c.scheduler.address
        assert address.startswith("tcp://127.0.0.1:")
        out = tmp_path / "out"
        assert (
            cli.main(
                ["plan", str(small_plan), "--out", str(out), "--scheduler", address, "--quiet"]
            )
            == 0
        )
        answer = json.loads((out / "plan.json").read_text(encoding="utf-8"))
        assert answer["computed"] == 6
    finally:
        for process in (worker, scheduler):
            process.terminate()
        for process in (worker, scheduler):
            process.wait(timeout=30)


def test_the_sweep_is_cut_into_a_few_tasks_per_worker() -> None:
    parts = chunks(list(range(60)), 2)
    assert len(parts) == 8 and [i for p in parts for i in p] == list(range(60))
    assert chunks([3, 5], 4) == [[3], [5]]
    assert chunks([], 2) == []
