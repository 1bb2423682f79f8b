"""A small, safe Markdown-to-HTML renderer for the runbooks (offline, no dependency).

Covers what `runbooks/*.md` use: headings, paragraphs, bullet and numbered
lists, pipe tables, `**bold**`, `*emphasis*`, `` `code` ``, fenced code blocks,
block quotes and relative links. Everything is HTML-escaped first; links keep
only relative targets and `#fragments` (no `javascript:`, no other hosts), and a
link to another runbook stays inside `/runbooks/`.
"""

from __future__ import annotations

import html
import re

_INLINE_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_TARGET = re.compile(r"^(?:[A-Za-z0-9_./-]+\.md)?(?:#[A-Za-z0-9_-]*)?$")


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def _link(match: re.Match[str]) -> str:
    label, target = match.group(1), html.unescape(match.group(2))
    if not target or not _SAFE_TARGET.match(target):
        return label
    if target.startswith("../"):
        return label  # outside the runbooks: not served
    return f'<a href="{html.escape(target, quote=True)}">{label}</a>'


def inline(text: str) -> str:
    out = html.escape(text, quote=False)
    parts = _INLINE_CODE.split(out)
    for i in range(0, len(parts), 2):
        part = _BOLD.sub(r"<strong>\1</strong>", parts[i])
        part = _EM.sub(r"<em>\1</em>", part)
        parts[i] = _LINK.sub(_link, part)
    for i in range(1, len(parts), 2):
        parts[i] = f"<code>{parts[i]}</code>"
    return "".join(parts)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def render(markdown: str) -> str:
    """The body HTML of a Markdown document."""
    lines = markdown.splitlines()
    out: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(block))}</code></pre>")
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if heading:
            flush()
            level = len(heading.group(1))
            text = heading.group(2)
            out.append(f'<h{level} id="{slug(text)}">{inline(text)}</h{level}>')
            i += 1
            continue
        if (
            stripped.startswith("|")
            and i + 1 < len(lines)
            and re.match(r"^\|?\s*:?-{3,}", lines[i + 1].strip())
        ):
            flush()
            head = _cells(stripped)
            out.append("<table><thead><tr>")
            out.extend(f"<th>{inline(c)}</th>" for c in head)
            out.append("</tr></thead><tbody>")
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                out.append("<tr>")
                out.extend(f"<td>{inline(c)}</td>" for c in _cells(lines[i]))
                out.append("</tr>")
                i += 1
            out.append("</tbody></table>")
            continue
        item = re.match(r"^(\s*)([-*]|\d+[.)])\s+(.*)$", line)
        if item and not line.startswith("    "):
            flush()
            ordered = item.group(2)[0].isdigit()
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>")
            while i < len(lines):
                m = re.match(r"^(\s*)([-*]|\d+[.)])\s+(.*)$", lines[i])
                if not m:
                    break
                text = [m.group(3)]
                i += 1
                while (
                    i < len(lines)
                    and lines[i].startswith("  ")
                    and lines[i].strip()
                    and not re.match(r"^\s*([-*]|\d+[.)])\s+", lines[i])
                ):
                    text.append(lines[i].strip())
                    i += 1
                out.append(f"<li>{inline(' '.join(text))}</li>")
            out.append(f"</{tag}>")
            continue
        if stripped.startswith(">"):
            flush()
            quote = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quote.append(lines[i].strip()[1:].strip())
                i += 1
            out.append(f"<blockquote><p>{inline(' '.join(quote))}</p></blockquote>")
            continue
        if not stripped:
            flush()
        else:
            para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)


def page(title: str, body: str) -> str:
    """A whole, self-contained HTML page (styles inline, no scripts, no outside resources)."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:18px/1.5 system-ui,sans-serif;max-width:52em;margin:0 auto;"
        "padding:1em;color:#111;background:#fff}table{border-collapse:collapse}"
        "td,th{border:1px solid #888;padding:.3em .5em;text-align:left}"
        "code{background:#eee;padding:0 .2em}a{color:#0645ad}"
        "@media (prefers-color-scheme:dark){body{background:#111;color:#eee}"
        "code{background:#333}a{color:#8cf}}</style></head><body>"
        "<p><a href='/'>&larr; resilience</a> &middot; <a href='README.md'>runbooks</a></p>"
        f"{body}</body></html>"
    )
