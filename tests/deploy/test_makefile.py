"""The README's two commands install what each needs: `make demo` no test tools."""

from __future__ import annotations

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
    assert any("-e '.[test]'" in line for line in _planned("test"))
