"""The README's two commands install what each needs: `make demo` no test tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _planned(target: str) -> list[str]:
    """The commands `make TARGET` would run on a fresh checkout (-B: nothing up to date)."""
    result = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True, check=True
    )
    return [line for line in result.stdout.splitlines() if "pip install" in line]


def test_demo_installs_the_package_without_the_test_extras() -> None:
    demo = _planned("demo")
    assert demo and all("[test]" not in line for line in demo), demo
    assert any(line.rstrip().endswith("-e .") for line in demo), demo


def test_test_installs_the_test_extras() -> None:
    """The tests need the test extra and the plan extra (tests/planning runs Dask)."""
    assert any("-e '.[test,plan]'" in line for line in _planned("test"))


STATION = "tools/ocpp-rpc-station"
NPM_CI = f"cd {STATION} && npm ci --no-audit --no-fund"


def _all_planned(target: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_test_installs_the_ocpp_rpc_station_and_demo_does_not() -> None:
    assert NPM_CI in _all_planned("test")
    assert not [line for line in _all_planned("demo") if "npm" in line or "nodejs" in line]


def _checkout(tmp_path: Path) -> Path:
    """The Makefile and the station's package files, in a scratch tree of their own."""
    (tmp_path / STATION).mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", tmp_path)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(ROOT / STATION / name, tmp_path / STATION)
    return tmp_path


def _stub_path(tmp_path: Path, *, with_node: bool) -> tuple[Path, Path]:
    """A PATH with only what the recipe needs: real coreutils, recording stubs of npm,
    dpkg-query (nothing installed), apt-get and sudo, and node only WITH_NODE."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for tool in ("id", "touch", "grep", "env", "mkdir"):
        real = shutil.which(tool)
        assert real is not None, tool
        (bin_dir / tool).symlink_to(real)
    stubs = {
        "npm": 'echo "npm $* in $PWD" >> LOG; mkdir -p node_modules\n'
        "touch node_modules/.package-lock.json",
        "dpkg-query": "exit 1",
        "apt-get": 'echo "apt-get $*" >> LOG',
        "sudo": 'exec "$@"',
    }
    if with_node:
        stubs["node"] = "exit 0"
    for name, body in stubs.items():
        stub = bin_dir / name
        stub.write_text(f"#!/bin/bash\n{body.replace('LOG', str(log))}\n")
        stub.chmod(0o755)
    return bin_dir, log


def _make(tree: Path, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(shutil.which("make")), "-C", str(tree), *args],
        capture_output=True,
        text=True,
        env={"PATH": str(path), "HOME": str(tree)},
    )


@pytest.mark.parametrize("with_node", [True, False])
def test_node_packages_installs_debian_nodejs_only_without_node(
    tmp_path: Path, with_node: bool
) -> None:
    tree = _checkout(tmp_path / "tree")
    bin_dir, log = _stub_path(tmp_path, with_node=with_node)
    result = _make(tree, bin_dir, "node-packages")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    apt = [call for call in calls if call.startswith("apt-get install")]
    assert apt == ([] if with_node else [apt[0]]), calls
    assert with_node or apt[0].split()[-2:] == ["nodejs", "npm"], calls
    assert f"npm ci --no-audit --no-fund in {tree / STATION}" in calls


def test_node_packages_reinstalls_only_when_the_lock_file_is_newer(tmp_path: Path) -> None:
    tree = _checkout(tmp_path / "tree")
    bin_dir, log = _stub_path(tmp_path, with_node=True)
    assert _make(tree, bin_dir, "node-packages").returncode == 0
    assert _make(tree, bin_dir, "-q", "node-packages").returncode == 0  # up to date
    stamp = tree / STATION / "node_modules" / ".package-lock.json"
    lock = tree / STATION / "package-lock.json"
    os.utime(lock, (stamp.stat().st_mtime + 10,) * 2)
    assert _make(tree, bin_dir, "-q", "node-packages").returncode == 1  # out of date
    assert _make(tree, bin_dir, "node-packages").returncode == 0
    assert sum("npm ci" in call for call in log.read_text().splitlines()) == 2
