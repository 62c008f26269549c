"""Wikitext to (section, paragraph) blocks: parsed by mwparserfromhell, rendered as the page reads.

mwparserfromhell's own ``strip_code`` keeps what a reader never sees (reference text, file captions,
category names) and flattens lists and tables into run-on text, so the parsed tree is rendered here:

- headings at the top level start sections (``Install > Linux``); a chunk never spans two;
- templates, template arguments, comments, references, galleries, scripts and styles are dropped
  (an infobox is data about the page, not its prose);
- file, image, media and category links are dropped; other links read as their text;
  a bracketed external link reads as its label, a bare URL as itself;
- list items become lines (``- item`` for ``*`` and ``#``), table rows become ``cell | cell`` lines;
- ``<pre>``, ``<nowiki>`` and the other unparsed tags keep their text, with entities decoded.

Blank lines separate paragraphs, as in MediaWiki's own rendering.

mwparserfromhell's tokenizer backtracks from every opening it cannot close (``<span>``, ``{{``,
``[[``) to the end of the text, so its time grows with openings left open times the text's length
(100 unclosed ``<span>`` before 1 MB of prose: 4 s). Text whose estimate exceeds ``MAX_PARSE_COST``
is refused with the reason (a dead letter), rather than holding the worker for minutes.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable

import mwparserfromhell
from mwparserfromhell.definitions import is_parsable
from mwparserfromhell.nodes import (
    ExternalLink,
    Heading,
    HTMLEntity,
    Node,
    Tag,
    Text,
    Wikilink,
)
from mwparserfromhell.wikicode import Wikicode

from streams.errors import ChunkingError
from streams.pipeline.sections import Block, HeadingPath, collapse, paragraphs

_HIDDEN_LINK_NAMESPACES = frozenset({"file", "image", "media", "category"})
# Tags whose content MediaWiki does not show as the page's prose.
_DROPPED_TAGS = frozenset(
    {"ref", "references", "gallery", "script", "style", "includeonly", "templatedata", "imagemap", "timeline", "math"}
)
_LINE_TAGS = frozenset(
    {"p", "div", "blockquote", "center", "ul", "ol", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "poem"}
)
_LIST_MARKUP = frozenset("*#;:")
_CELL_TAGS = frozenset({"td", "th"})
_ROW_GROUP_TAGS = frozenset({"thead", "tbody", "tfoot"})
# Behaviour switches (__NOTOC__), emphasis quotes the parser could not pair, and tags it left as text
# because they were never closed: MediaWiki shows none of them.
_INVISIBLE = re.compile(r"__[A-Z]+__|'{2,}|</?[a-zA-Z][\w:-]*(?:\s[^<>]*)?/?>")
_RULE = re.compile(r"[\s|-]*")

# Openings counted for the cost estimate; void and self-closed tags never need closing.
_OPENINGS = re.compile(r"\{\{|\}\}|\[\[|\]\]|<(/?)([a-zA-Z][\w-]*)(?:\s[^<>]*?)?(/?)>")
_CLOSES = {"}}": "{{", "]]": "[["}
_VOID_TAGS = frozenset({"br", "hr", "wbr", "img", "references", "nowiki"})
# Openings left open times characters: about 3e7 a second on one core.
MAX_PARSE_COST = 100_000_000


def wikitext_blocks(text: str) -> list[Block]:
    """(section path, paragraph) pairs in page order; markup rendered away, empty paragraphs dropped."""
    text = text.replace("\r\n", "\n")
    if (cost := unclosed_openings(text) * len(text)) > MAX_PARSE_COST:
        raise ChunkingError(
            f"wikitext of {len(text):,} characters with {cost // len(text):,} unclosed openings"
            f" (tags, templates, links) is too costly to parse (limit {MAX_PARSE_COST:,} opening-characters)"
        )
    code = mwparserfromhell.parse(text)
    headings = HeadingPath()
    blocks: list[Block] = []
    section: list[Node] = []

    def flush() -> None:
        for paragraph in paragraphs(_render(section)):
            lines = [line for line in collapse(paragraph).split("\n") if not _RULE.fullmatch(line)]
            if lines:
                blocks.append((headings.path, "\n".join(lines)))
        section.clear()

    for node in code.nodes:
        if isinstance(node, Heading):
            flush()
            headings.push(node.level, _inline(node.title))
        else:
            section.append(node)
    flush()
    return blocks


def unclosed_openings(text: str) -> int:
    """Openings (per tag name, ``{{``, ``[[``) that outnumber their closings: an estimate, linear in the text."""
    balance: Counter[str] = Counter()
    for match in _OPENINGS.finditer(text):
        token = match.group(0)
        if token in _CLOSES:
            balance[_CLOSES[token]] -= 1
        elif match.group(2) is None:
            balance[token] += 1
        elif not match.group(3) and (name := match.group(2).lower()) not in _VOID_TAGS:
            balance[name] += -1 if match.group(1) else 1
    return sum(count for count in balance.values() if count > 0)


def _render(nodes: Iterable[Node]) -> str:
    out: list[str] = []
    previous: Node | None = None
    for node in nodes:
        at_line_start = not out or out[-1].endswith("\n")
        piece = _node(node, previous, at_line_start=at_line_start)
        if isinstance(previous, Tag) and at_line_start and piece.startswith("\n"):
            # A table or block tag ends its own line; the source's newline after it is that same
            # line end, not a blank line between paragraphs.
            piece = piece[1:]
        if piece:
            out.append(piece)
        previous = node
    return "".join(out)


def _own_lines(text: str, *, at_line_start: bool) -> str:
    return ("" if at_line_start else "\n") + text + "\n"


def _node(node: Node, previous: Node | None, *, at_line_start: bool) -> str:
    if isinstance(node, Text):
        return _INVISIBLE.sub("", node.value)
    if isinstance(node, HTMLEntity):
        return node.normalize()
    if isinstance(node, Wikilink):
        return _link(node)
    if isinstance(node, ExternalLink):
        if node.brackets:
            return _render(node.title.nodes) if node.title else ""
        return _render(node.url.nodes)
    if isinstance(node, Heading):  # inside a tag, so not a section of its own
        return _own_lines(_inline(node.title), at_line_start=at_line_start)
    if isinstance(node, Tag):
        return _tag(node, previous, at_line_start=at_line_start)
    return ""  # templates, template arguments and comments


def _link(link: Wikilink) -> str:
    title = str(link.title).strip()
    namespace = title.split(":", 1)[0].strip().lower() if ":" in title else ""
    if namespace in _HIDDEN_LINK_NAMESPACES:
        return ""
    if link.text is not None and str(link.text).strip():
        return _render(link.text.nodes)
    return _render(link.title.nodes).strip().removeprefix(":")


def _tag(tag: Tag, previous: Node | None, *, at_line_start: bool) -> str:
    name = _name(tag)
    if name in _DROPPED_TAGS:
        return ""
    if tag.wiki_markup and tag.wiki_markup in _LIST_MARKUP:
        # One line of a list: "**" is two tags, but the item gets one marker.
        if isinstance(previous, Tag) and previous.wiki_markup and previous.wiki_markup in _LIST_MARKUP:
            return ""
        if not at_line_start:  # "; term : definition"
            return ": "
        return "- " if tag.wiki_markup in "*#" else ""
    if name == "table":
        return _own_lines(_table(tag), at_line_start=at_line_start)
    if name == "br":
        return "\n"
    if tag.contents is None:
        return ""
    if not is_parsable(name):  # nowiki, pre, syntaxhighlight...: the text as written
        return html.unescape(str(tag.contents))
    inner = _render(tag.contents.nodes)
    if name == "li":
        return _own_lines(f"- {inner}", at_line_start=at_line_start)
    return _own_lines(inner, at_line_start=at_line_start) if name in _LINE_TAGS else inner


def _table(table: Tag) -> str:
    """One line per row, cells joined by " | "; a caption is a line of its own."""
    rows: list[str] = []
    loose: list[str] = []  # cells before the first row delimiter belong to an implicit first row

    def row(cells: Iterable[Node]) -> str:
        return " | ".join(text for text in (_cell(cell) for cell in cells) if text)

    def walk(nodes: Iterable[Node]) -> None:
        for node in nodes:
            if not isinstance(node, Tag):
                continue
            name = _name(node)
            if name in _CELL_TAGS and str(node).startswith("|+"):  # a wiki caption, parsed as a cell
                rows.append(_cell(node).removeprefix("+").strip())
            elif name == "caption":
                rows.append(_cell(node))
            elif name in _CELL_TAGS:
                loose.append(_cell(node))
            elif name == "tr" and node.contents is not None:
                if loose:
                    rows.append(" | ".join(cell for cell in loose if cell))
                    loose.clear()
                rows.append(row(n for n in node.contents.nodes if isinstance(n, Tag) and _name(n) in _CELL_TAGS))
            elif name in _ROW_GROUP_TAGS and node.contents is not None:
                walk(node.contents.nodes)

    if table.contents is not None:
        walk(table.contents.nodes)
    if loose:
        rows.append(" | ".join(cell for cell in loose if cell))
    return "\n".join(line for line in rows if line)


def _cell(cell: Node) -> str:
    assert isinstance(cell, Tag)
    return " ".join(collapse(_render(cell.contents.nodes)).split("\n")) if cell.contents is not None else ""


def _inline(code: Wikicode) -> str:
    return " ".join(collapse(_render(code.nodes)).split("\n"))


def _name(tag: Tag) -> str:
    return str(tag.tag).strip().lower()
