"""What a parser hands the chunker: (section path, paragraph) blocks, and the heading path they sit under."""

from __future__ import annotations

import re

Block = tuple[str, str]  # (section path such as "Install > Linux", paragraph text)
SECTION_SEPARATOR = " > "

_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")


class HeadingPath:
    """The headings above the current point: a heading closes every open one at its level or deeper."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> None:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, title))

    @property
    def path(self) -> str:
        return SECTION_SEPARATOR.join(title for _, title in self._open if title)


def collapse(text: str) -> str:
    """Each line with runs of spaces made one and its ends trimmed; empty lines dropped."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def paragraphs(text: str) -> list[str]:
    """Plain text's paragraphs: separated by blank lines, stripped, empty ones dropped."""
    return [p.strip() for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if p.strip()]
