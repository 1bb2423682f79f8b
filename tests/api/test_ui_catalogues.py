"""The UI's message catalogues: English and Turkish complete, every key the UI uses exists.

Keys are found in the HTML (`data-i18n="..."`), in the JavaScript (`t("...")` calls and
`data-i18n` attributes), and as families the JavaScript builds from the controller's
vocabulary (`mode.<mode>`, `tier.<tier>`, ...), which are checked against the enums.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resilience.auth import ROLES
from resilience.model import BreakerPosition, Mode, Tier

UI = Path(__file__).resolve().parents[2] / "resilience" / "ui"


def catalogue(lang: str) -> dict[str, str]:
    data = json.loads((UI / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*UI.glob("*.html"), *UI.glob("*.js")]:
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'data-i18n(?:-aria-label)?="([^"]+)"', text))
        keys |= set(re.findall(r'\bt\(\s*"([^"$]+)"', text))
    return keys


def test_english_and_turkish_have_exactly_the_same_keys() -> None:
    en, tr = catalogue("en"), catalogue("tr")
    assert set(en) - set(tr) == set(), "missing in tr.json"
    assert set(tr) - set(en) == set(), "missing in en.json"
    for key in en:
        assert en[key].strip() and tr[key].strip(), key
        placeholders = set(re.findall(r"\{(\w+)\}", en[key]))
        assert placeholders == set(re.findall(r"\{(\w+)\}", tr[key])), key


def test_every_key_the_ui_uses_exists() -> None:
    keys = used_keys()
    assert len(keys) > 50  # the scan found the UI's keys
    en = catalogue("en")
    assert sorted(keys - set(en)) == []


@pytest.mark.parametrize(
    "family,values",
    [
        ("mode", [m.value for m in Mode]),
        ("mode_info", [m.value for m in Mode]),
        ("tier", [t.label for t in Tier]),
        ("pcc", [p.name.lower() for p in BreakerPosition] + ["unknown"]),
        ("role", list(ROLES)),
        ("load", ["on", "off", "locked_off", "unknown", "shed", "restore"]),
        ("severity", ["info", "warning", "critical"]),
        ("conn", ["live", "lost", "connecting"]),
    ],
)
def test_keys_built_from_the_controller_vocabulary_exist(family: str, values: list[str]) -> None:
    en = catalogue("en")
    assert [v for v in values if f"{family}.{v}" not in en] == []


def test_vehicle_states_the_ui_can_show_exist() -> None:
    app = (UI / "app.js").read_text(encoding="utf-8")
    table = re.search(r"const VSTATE_LOOK = \{(.*?)\};", app, re.S)
    assert table is not None
    states = re.findall(r"(\w+):", table.group(1))
    assert len(states) >= 10
    en = catalogue("en")
    assert [s for s in states if f"vstate.{s}" not in en] == []
