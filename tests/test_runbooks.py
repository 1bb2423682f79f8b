"""The operator runbooks: one per mode and per procedure, each complete, every link alive.

Reads `runbooks/*.md` (and the repository's README.md where it links into
`runbooks/`) as plain text: no Markdown renderer, no network. Checked here:

* every `Mode` has an entry in `resilience.modes.RUNBOOKS`, and that file exists
  and is not empty;
* every procedure runbook exists (`PROCEDURES`);
* every runbook has the five operator sections (`SECTIONS`) as `##` headings, in
  order, none empty; "What to do" has numbered steps; "Related" links somewhere;
* every relative link resolves to an existing file and, with a `#fragment`, to a
  heading of that file (GitHub's heading slugs);
* the index, `runbooks/README.md`, links every runbook.

The checkers (`missing_runbooks`, `broken_links`, ...) are plain functions that
return a list of problems, one string each, and are themselves tested on broken
inputs in a temporary directory, so a missing runbook or a dead link is known
to fail the suite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote

import pytest

from resilience.model import Mode
from resilience.modes import RUNBOOKS

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK_DIR = ROOT / "runbooks"
INDEX = RUNBOOK_DIR / "README.md"
REPO_README = ROOT / "README.md"

SECTIONS = ("What you see", "What to check", "What to do", "What never to do", "Related")
PROCEDURES = (
    "grid_outage",
    "earthquake",
    "storm_warning",
    "reconnection",
    "donor_vehicle_arrival",
    "running_a_drill",
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_NUMBERED_STEP = re.compile(r"^\s*\d+\.\s+\S")


# --------------------------------------------------------------------------- Markdown reading
def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def headings(text: str) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks."""
    out: list[tuple[int, str]] = []
    for _, line in prose_lines(text):
        match = _HEADING.match(line)
        if match:
            out.append((len(match.group(1)), match.group(2)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a document; repeated slugs get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, title in headings(text):
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    out: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        line = _CODE_SPAN.sub("", line)
        out.extend((number, m.group(1)) for m in _INLINE_LINK.finditer(line))
        match = _REFERENCE_DEF.match(line)
        if match:
            out.append((number, match.group(1)))
    return out


def sections(text: str) -> dict[str, str]:
    """The body of each `##` section, by heading text (deeper headings stay in the body)."""
    out: dict[str, str] = {}
    current: str | None = None
    for _, line in prose_lines(text):
        match = _HEADING.match(line)
        if match and len(match.group(1)) <= 2:
            current = match.group(2) if len(match.group(1)) == 2 else None
            if current is not None:
                out[current] = ""
            continue
        if current is not None:
            out[current] += line + "\n"
    return out


# --------------------------------------------------------------------------- checkers
def resolve(source: Path, target: str) -> tuple[Path | None, str | None]:
    """A relative link target as (file, fragment); (None, None) for an external link."""
    if _SCHEME.match(target):
        return None, None
    path_part, _, fragment = target.partition("#")
    path = source if not path_part else (source.parent / unquote(path_part))
    return path, (unquote(fragment) if fragment else None)


def broken_links(source: Path, only_under: Path | None = None) -> list[str]:
    """Every relative link of `source` that points nowhere, as "file:line: target: reason".

    With `only_under`, links resolving outside that directory are not checked.
    """
    problems: list[str] = []
    text = source.read_text(encoding="utf-8")
    for number, target in links(text):
        where = f"{source.name}:{number}: {target}"
        if target.startswith("/"):
            problems.append(f"{where}: absolute path, use a relative link")
            continue
        path, fragment = resolve(source, target)
        if path is None:
            continue
        path = path.resolve()
        if only_under is not None and not path.is_relative_to(only_under.resolve()):
            continue
        if not path.exists():
            problems.append(f"{where}: no such file {path}")
            continue
        if fragment is not None:
            if path.suffix.lower() != ".md" or not path.is_file():
                problems.append(f"{where}: anchor into something that is not a Markdown file")
            elif fragment not in anchors(path.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with anchor #{fragment} in {path.name}")
    return problems


def missing_runbooks(runbooks: Mapping[Mode, str], root: Path) -> list[str]:
    """Every mode without a runbook entry, or whose runbook file is missing or empty."""
    problems: list[str] = []
    for mode in Mode:
        entry = runbooks.get(mode)
        if entry is None:
            problems.append(f"{mode.value}: no entry in RUNBOOKS")
            continue
        path = root / entry
        if not path.is_file():
            problems.append(f"{mode.value}: {entry} does not exist")
        elif not path.read_text(encoding="utf-8").strip():
            problems.append(f"{mode.value}: {entry} is empty")
    return problems


def missing_sections(text: str) -> list[str]:
    """What the operator sections of one runbook lack: heading, order, content."""
    found = [title for level, title in headings(text) if level == 2]
    problems = [f"no '## {name}' heading" for name in SECTIONS if name not in found]
    problems += [
        f"'## {name}' appears {found.count(name)} times"
        for name in SECTIONS
        if found.count(name) > 1
    ]
    if problems:
        return problems
    order = [title for title in found if title in SECTIONS]
    if order != list(SECTIONS):
        problems.append(f"sections out of order: {order}")
    bodies = sections(text)
    problems += [f"'## {name}' is empty" for name in SECTIONS if not bodies[name].strip()]
    if not any(_NUMBERED_STEP.match(line) for line in bodies["What to do"].splitlines()):
        problems.append("'## What to do' has no numbered steps")
    if not links(bodies["Related"]):
        problems.append("'## Related' links nowhere")
    return problems


def unlisted_runbooks(index: Path) -> list[str]:
    """Runbooks in the index's directory that the index does not link to."""
    listed: set[Path] = set()
    for _, target in links(index.read_text(encoding="utf-8")):
        path, _ = resolve(index, target)
        if path is not None:
            listed.add(path.resolve())
    return sorted(
        path.name
        for path in index.parent.glob("*.md")
        if path.resolve() != index.resolve() and path.resolve() not in listed
    )


# --------------------------------------------------------------------------- the real runbooks
RUNBOOK_FILES = sorted(p for p in RUNBOOK_DIR.glob("*.md") if p.name != INDEX.name)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_runbooks_directory_is_not_empty() -> None:
    assert INDEX.is_file(), "runbooks/README.md (the index) is missing"
    assert RUNBOOK_FILES, "runbooks/ holds no runbook"


@pytest.mark.parametrize("mode", list(Mode), ids=[m.value for m in Mode])
def test_every_mode_has_its_runbook(mode: Mode) -> None:
    assert mode in RUNBOOKS, f"{mode.value}: no entry in resilience.modes.RUNBOOKS"
    assert RUNBOOKS[mode] == f"runbooks/{mode.value}.md"
    path = ROOT / RUNBOOKS[mode]
    assert path.is_file(), f"{RUNBOOKS[mode]} does not exist"
    assert path.read_text(encoding="utf-8").strip(), f"{RUNBOOKS[mode]} is empty"


def test_no_mode_lacks_a_runbook() -> None:
    assert missing_runbooks(RUNBOOKS, ROOT) == []


@pytest.mark.parametrize("name", PROCEDURES)
def test_every_procedure_has_its_runbook(name: str) -> None:
    path = RUNBOOK_DIR / f"{name}.md"
    assert path.is_file(), f"runbooks/{name}.md is missing"
    assert path.read_text(encoding="utf-8").strip(), f"runbooks/{name}.md is empty"


@pytest.mark.parametrize("path", RUNBOOK_FILES, ids=_ids(RUNBOOK_FILES))
def test_runbook_has_the_operator_sections(path: Path) -> None:
    assert missing_sections(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("mode", list(Mode), ids=[m.value for m in Mode])
def test_mode_runbook_names_its_banner(mode: Mode) -> None:
    path = ROOT / RUNBOOKS.get(mode, f"runbooks/{mode.value}.md")
    assert path.is_file(), f"{path.relative_to(ROOT)} does not exist"
    text = path.read_text(encoding="utf-8")
    banner = mode.value.replace("_", " ").upper()
    assert banner in sections(text).get("What you see", ""), (
        f"{path.name}: 'What you see' does not name the banner {banner!r}"
    )


LINKING_FILES = [INDEX, *RUNBOOK_FILES]


@pytest.mark.parametrize("path", LINKING_FILES, ids=_ids(LINKING_FILES))
def test_runbook_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_repository_readme_links_into_runbooks_resolve() -> None:
    if not REPO_README.is_file():
        pytest.skip("no README.md at the repository root")
    assert broken_links(REPO_README, only_under=RUNBOOK_DIR) == []


def test_index_lists_every_runbook() -> None:
    assert unlisted_runbooks(INDEX) == []


# --------------------------------------------------------------------------- the checkers fail
def test_missing_runbooks_reports_absent_entry_missing_file_and_empty_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "starting.md").write_text("# STARTING\n", encoding="utf-8")
    (tmp_path / "runbooks" / "islanded.md").write_text("  \n", encoding="utf-8")
    runbooks = {
        Mode.STARTING: "runbooks/starting.md",
        Mode.ISLANDED: "runbooks/islanded.md",
        Mode.EMERGENCY: "runbooks/emergency.md",
    }
    problems = missing_runbooks(runbooks, tmp_path)
    assert "islanded: runbooks/islanded.md is empty" in problems
    assert "emergency: runbooks/emergency.md does not exist" in problems
    assert "grid_connected: no entry in RUNBOOKS" in problems
    assert not any(p.startswith("starting:") for p in problems)
    assert len(problems) == len(Mode) - 1


def test_broken_links_reports_dead_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text(
        "# Other\n\n## What to do\n\n## What to do\n", encoding="utf-8"
    )
    (tmp_path / "page.md").write_text(
        "# Page\n\n## Safety rules: always\n\n"
        "[ok](other.md) [ok](other.md#what-to-do) [ok](other.md#what-to-do-1)\n"
        "[ok](#safety-rules-always) [ext](https://example.org/x.md) `[code](gone.md)`\n"
        "```\n[fenced](gone.md)\n```\n"
        "[dead](gone.md)\n"
        "[bad anchor](other.md#what-never-to-do)\n"
        "[bad self](#nowhere)\n"
        "[abs](/runbooks/other.md)\n"
        "[ref]: missing.md\n",
        encoding="utf-8",
    )
    problems = broken_links(tmp_path / "page.md")
    assert len(problems) == 5, problems
    assert problems[0].startswith("page.md:10: gone.md: no such file")
    assert "#what-never-to-do" in problems[1]
    assert "#nowhere" in problems[2]
    assert "absolute path" in problems[3]
    assert problems[4].startswith("page.md:14: missing.md: no such file")


def test_broken_links_can_check_only_links_under_a_directory(tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("[elsewhere](docs/gone.md) [runbook](runbooks/gone.md)\n", encoding="utf-8")
    problems = broken_links(readme, only_under=tmp_path / "runbooks")
    assert len(problems) == 1
    assert "runbooks/gone.md" in problems[0]


def test_missing_sections_reports_absent_out_of_order_and_empty_sections() -> None:
    complete = (
        "# X\n## What you see\nbanner\n## What to check\nthings\n"
        "## What to do\n1. act\n## What never to do\n- no\n## Related\n- [a](a.md)\n"
    )
    assert missing_sections(complete) == []
    assert missing_sections(complete.replace("## What to check\n", "")) == [
        "no '## What to check' heading"
    ]
    swapped = (
        complete.replace("## What you see", "## TMP")
        .replace("## What to check", "## What you see")
        .replace("## TMP", "## What to check")
    )
    assert any("out of order" in p for p in missing_sections(swapped))
    assert "'## What to do' has no numbered steps" in missing_sections(
        complete.replace("1. act", "act")
    )
    assert "'## Related' links nowhere" in missing_sections(complete.replace("- [a](a.md)", "- a"))
    assert "'## What never to do' is empty" in missing_sections(complete.replace("- no\n", ""))


def test_unlisted_runbooks_reports_a_runbook_missing_from_the_index(tmp_path: Path) -> None:
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text("# x\n", encoding="utf-8")
    index = tmp_path / "README.md"
    index.write_text("[a](a.md)\n", encoding="utf-8")
    assert unlisted_runbooks(index) == ["b.md"]


def test_slug_follows_github() -> None:
    assert slug("What never to do") == "what-never-to-do"
    assert slug("STARTING: the controller is reading") == "starting-the-controller-is-reading"
    assert slug("The reference site (Moda shelter, Kadıköy)") == (
        "the-reference-site-moda-shelter-kadıköy"
    )
    assert slug("`grid_connected` and [links](x.md)") == "grid_connected-and-links"
