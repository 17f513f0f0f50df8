"""A report page's table of contents: every h2 heading gets an anchor, and the list of them
goes where the template says <!-- contents -->. Done on the rendered page, so a section
that a run does not have is never listed."""

from __future__ import annotations

import html
import re

MARK = "<!-- contents -->"
HEADING = re.compile(r"<h2>(.*?)</h2>", re.S)
TAG = re.compile(r"<[^>]+>")


def with_contents(page: str) -> str:
    entries: list[tuple[str, str]] = []

    def anchor(match: re.Match) -> str:
        title = TAG.sub("", match[1]).strip()
        base = re.sub(r"[^a-z0-9]+", "-", html.unescape(title).lower()).strip("-") or "section"
        slug, n = base, 1
        while slug in {s for s, _ in entries}:  # two sections of one title
            n += 1
            slug = f"{base}-{n}"
        entries.append((slug, title))
        return f'<h2 id="{slug}">{match[1]}</h2>'

    page = HEADING.sub(anchor, page)
    links = " · ".join(f'<a href="#{slug}">{title}</a>' for slug, title in entries)
    return page.replace(MARK, f'<nav class="toc"><strong>Contents:</strong> {links}</nav>', 1)
