"""resilience.cli: exit codes and output of `check-config`, and how `sim` starts firmware_sim."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from resilience import cli
from resilience.config import load_site

REPO = Path(__file__).resolve().parent.parent
SITE_FILE = REPO / "config" / "site.toml"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def child_env() -> dict[str, str]:
    """Environment for a child Python that must import this checkout's `resilience`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# ---------------------------------------------------------------- check-config


def test_check_config_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    site = load_site(SITE_FILE)
    code, lines = run_cli(capsys, "check-config", str(SITE_FILE))
    assert code == 0
    assert lines == [
        f"{SITE_FILE}: ok ({len(site.devices)} devices, {len(site.loads)} loads,"
        f" {len(site.vehicles)} vehicles)"
    ]


def test_check_config_invalid_file_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SITE_FILE.read_text(encoding="utf-8")
    text = text.replace('tier = "comfort"', 'tier = "luxury"', 1)
    text = text.replace("return_to_service_s = 300.0", "return_to_servce_s = 300.0", 1)
    text = text.replace("port = 15050", 'port = "fifteen"', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")

    code, lines = run_cli(capsys, "check-config", str(bad))

    assert code == 1
    assert sorted(lines) == sorted(
        [
            f"{bad}: grid.return_to_servce_s: unknown key",
            f"{bad}: devices.pv.port: Input should be a valid integer,"
            " unable to parse string as an integer",
            f"{bad}: loads[10] (hvac).tier: unknown tier 'luxury'"
            " (expected one of: life_safety, critical, essential, comfort)",
        ]
    )


def test_check_config_reports_every_cross_check_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SITE_FILE.read_text(encoding="utf-8")
    text = text.replace('meter = "grid_meter"', 'meter = "grid_metre"', 1)
    text = text.replace('charger = "charger_4"', 'charger = "charger_5"', 1)
    bad = tmp_path / "cross.toml"
    bad.write_text(text, encoding="utf-8")

    code, lines = run_cli(capsys, "check-config", str(bad))

    assert code == 1
    assert lines == [
        f"{bad}: grid.meter: unknown device 'grid_metre'",
        f"{bad}: vehicles[3] (fleet_4).charger: unknown device 'charger_5'",
    ]


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.toml"
    code, lines = run_cli(capsys, "check-config", str(missing))
    assert code == 1
    assert lines == [f"{missing}: (file): No such file or directory"]


def test_check_config_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[site\nname = 'x'\n", encoding="utf-8")
    code, lines = run_cli(capsys, "check-config", str(broken))
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"{broken}: (syntax): ")
    assert "line 1" in lines[0]


def test_check_config_as_a_command(tmp_path: Path) -> None:
    """The same through `python -m resilience.cli`, as the console script runs it."""
    missing = tmp_path / "nowhere.toml"
    for path, expected in ((SITE_FILE, 0), (missing, 1)):
        done = subprocess.run(
            [sys.executable, "-m", "resilience.cli", "check-config", str(path)],
            capture_output=True,
            text=True,
            env=child_env(),
            check=False,
            timeout=60,
        )
        assert done.returncode == expected, done.stderr
        assert done.stdout.startswith(f"{path}: ")


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no command"),
        pytest.param(["frobnicate"], id="unknown command"),
        pytest.param(["check-config"], id="check-config without file"),
        pytest.param(["check-config", str(SITE_FILE), "--bogus"], id="unknown option"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_a_new_command_is_one_entry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []

    def handler(args: object, extra: list[str]) -> int:
        seen.append(getattr(args, "config", ""))
        return 3

    commands = {
        **cli.COMMANDS,
        "hello": cli.Command(
            help="say hello", handler=handler, add_arguments=cli.add_config_argument
        ),
    }
    monkeypatch.setattr(cli, "COMMANDS", commands)
    assert cli.main(["hello"]) == 3
    assert cli.main(["hello", "--config", "other.toml"]) == 3
    assert seen == [cli.DEFAULT_CONFIG, "other.toml"]


# ---------------------------------------------------------------- sim


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Swap the runner: record each command line `sim` would start, and exit 0."""
    commands: list[list[str]] = []

    def record(command: Sequence[str]) -> int:
        commands.append(list(command))
        return 0

    monkeypatch.setattr(cli, "runner", record)
    return commands


def test_sim_defaults_to_the_reference_site(started: list[list[str]]) -> None:
    assert cli.main(["sim"]) == 0
    assert started == [[sys.executable, "-m", "firmware_sim", "--config", "config/site.toml"]]


def test_sim_passes_other_arguments_through(started: list[list[str]]) -> None:
    argv = ["sim", "--config", "x.toml", "--control-port", "5020", "--free-ports"]
    assert cli.main(argv) == 0
    assert started == [
        [
            sys.executable,
            *("-m", "firmware_sim", "--config", "x.toml"),
            *("--control-port", "5020", "--free-ports"),
        ]
    ]


def test_sim_does_not_take_abbreviations_of_passed_options(started: list[list[str]]) -> None:
    assert cli.main(["sim", "--con", "5020"]) == 0
    assert started[0][-2:] == ["--con", "5020"]
    assert started[0][3:5] == ["--config", cli.DEFAULT_CONFIG]


def test_sim_returns_the_child_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "runner", lambda command: 4)
    assert cli.main(["sim"]) == 4


def test_sim_does_not_import_firmware_sim() -> None:
    program = (
        "import sys\n"
        "from resilience import cli\n"
        "cli.runner = lambda command: 0\n"
        "assert cli.main(['sim']) == 0\n"
        "print('firmware_sim' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=child_env(),
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "False"


def test_resilience_never_imports_firmware_sim() -> None:
    """The architecture's one-way rule, checked over every module of the package."""
    offenders = []
    for path in sorted((REPO / "resilience").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == "firmware_sim" for name in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


# ---------------------------------------------------------------- run_child


def test_run_child_returns_the_exit_code() -> None:
    assert cli.run_child([sys.executable, "-c", "raise SystemExit(3)"]) == 3


def test_run_child_reports_a_signal_as_a_shell_does() -> None:
    program = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert cli.run_child([sys.executable, "-c", program]) == 128 + signal.SIGKILL


def test_run_child_restores_signal_handlers() -> None:
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    cli.run_child([sys.executable, "-c", "pass"])
    after = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)]
    assert after == before


CHILD = """
import signal, sys
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(7))
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_sigterm_to_the_parent_stops_the_child() -> None:
    """`kill <pid of resilience sim>` must stop firmware_sim, not leave it running."""
    parent_program = (
        "import sys\n"
        "from resilience.cli import run_child\n"
        f"sys.exit(run_child([sys.executable, '-c', {CHILD!r}]))\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_program],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"  # the child runs, handler set
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 7  # the child's own exit code, passed through
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
