"""HTML to (section, paragraph) blocks, over the tree lxml (libxml2's HTML parser) builds.

Why lxml: it repairs real-world markup as browsers do for the cases that matter here (unclosed
``<p>`` and ``<li>``, stray end tags, ``</div>`` inside a script's string), it is already a dependency,
and it bounds nesting (a document nested deeper than libxml2's limit is refused with a reason here,
where lexbor, behind selectolax, takes time quadratic in the depth: 200,000 nested ``<div>`` took
over ten minutes). inscriptis renders layout-aware text but keeps ``<noscript>`` and ``<template>``
content and has no notion of sections.

Headings (h1-h6) start sections, block-level elements end paragraphs, ``<pre>`` keeps its
whitespace, ``<br>`` is a line break, and source newlines elsewhere are spaces, as a browser shows
them. Script, style, template, noscript and head content is never text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import lxml.etree
import lxml.html

from streams.errors import ChunkingError
from streams.pipeline.sections import Block, HeadingPath, collapse

Skip = Callable[[lxml.html.HtmlElement], bool]

_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_PARAGRAPH_TAGS = frozenset({"p", "li", "pre", "td", "th", "dt", "dd", "blockquote", "figcaption", "caption"})
_BOUNDARY_TAGS = _PARAGRAPH_TAGS | frozenset(
    {
        "div",
        "section",
        "article",
        "ul",
        "ol",
        "dl",
        "table",
        "tr",
        "header",
        "footer",
        "main",
        "aside",
        "nav",
        "body",
        "html",
        "hr",
        "form",
        "address",
        "figure",
        "details",
        "summary",
        "fieldset",
    }
)
_SKIPPED_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title", "iframe", "object", "svg"})
_WHITESPACE = re.compile(r"\s+")


def html_blocks(text: str, *, skip: Skip | None = None) -> list[Block]:
    """(section path, paragraph) pairs in document order; elements for which ``skip`` holds are dropped
    with everything inside them (their tail, the text after them, is kept)."""
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(text.encode("utf-8", errors="replace"), parser=parser)
    except lxml.etree.ParserError:  # "Document is empty": only whitespace, comments or a doctype
        return []
    for error in parser.error_log:
        if error.type_name == "ERR_RESOURCE_LIMIT":
            raise ChunkingError(f"HTML could not be parsed whole: {error.message}")
    return _Blocks(skip).walk(root)


class _Blocks:
    def __init__(self, skip: Skip | None) -> None:
        self.skip = skip
        self.blocks: list[Block] = []
        self.headings = HeadingPath()
        self.text: list[str] = []
        self.heading_level = 0
        self.pre = 0

    def walk(self, root: lxml.html.HtmlElement) -> list[Block]:
        walker = lxml.etree.iterwalk(root, events=("start", "end"))
        skipped: lxml.html.HtmlElement | None = None
        for event, element in walker:
            tag = element.tag.lower() if isinstance(element.tag, str) else ""
            if event == "start":
                if tag in _SKIPPED_TAGS or (self.skip is not None and self.skip(element)):
                    skipped = element
                    walker.skip_subtree()
                    continue
                self.start(tag)
                self.add(element.text)
            else:
                if element is skipped:
                    skipped = None
                else:
                    self.end(tag)
                self.add(element.tail)
        self.flush()
        return self.blocks

    def start(self, tag: str) -> None:
        if tag in _HEADING_TAGS:
            self.flush()
            self.heading_level = _HEADING_TAGS[tag]
        elif tag in _BOUNDARY_TAGS:
            self.flush()
            self.pre += tag == "pre"
        elif tag == "br":
            self.text.append("\n")

    def end(self, tag: str) -> None:
        if tag in _HEADING_TAGS and self.heading_level:
            title = " ".join(collapse("".join(self.text)).split("\n"))
            self.text.clear()
            if title:
                self.headings.push(self.heading_level, title)
            self.heading_level = 0
        elif tag in _BOUNDARY_TAGS:
            self.flush()
            self.pre = max(0, self.pre - (tag == "pre"))

    def add(self, data: str | None) -> None:
        if data:
            self.text.append(data if self.pre else _WHITESPACE.sub(" ", data))

    def flush(self) -> None:
        raw = "".join(self.text)
        self.text.clear()
        if self.heading_level:  # a block tag inside a heading: keep collecting the heading
            self.text.append(raw)
            return
        paragraph = raw.strip("\n") if self.pre else collapse(raw)
        if paragraph.strip():
            self.blocks.append((self.headings.path, paragraph))
