"""Convert one HTML documentation page into MediaWiki wikitext, with the standard library only.

The output uses the small part of wikitext that real wiki pages lean on: ``== Heading ==``,
paragraphs separated by blank lines, ``*``/``#`` list items, ``<pre>`` blocks for code and
``[[Target|text]]`` links between pages of the same corpus. Navigation chrome (the DocBook
``navheader``/``navfooter`` and tables of contents) is dropped: it is not what a person writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser

# Leading numbering that DocBook puts in titles: "Chapter 5. ", "Appendix F. ", "5.1.2. ", "F.3. ".
_NUMBERING = re.compile(r"^(?:(?:Chapter|Appendix|Part)\s+[\w.]+\.?\s+|[A-Z]?\d*(?:\.\d+)*\.\s+)")
_SPACES = re.compile(r"\s+")
_SKIPPED_CLASSES = frozenset({"navheader", "navfooter", "toc", "indexterm", "list-of-tables", "list-of-figures"})
_SKIPPED_TAGS = frozenset({"head", "script", "style"})
_HEADINGS = {"h1": 2, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 5}
_BLOCKS = frozenset({"p", "div", "dl", "dt", "dd", "blockquote", "table", "caption", "section", "hr"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"})


@dataclass(frozen=True)
class WikiPage:
    title: str
    text: str


def clean_title(title: str) -> str:
    """A page or heading title without DocBook numbering ("5.1. Table Basics" -> "Table Basics")."""
    title = _SPACES.sub(" ", title).strip()
    return _NUMBERING.sub("", title, count=1).strip() or title


def html_to_wikitext(html: str, link_titles: Mapping[str, str] | None = None) -> WikiPage:
    """Convert an HTML page. ``link_titles`` maps a linked file name ("sql-select.html") to the
    title of the wiki page made from it; links to files outside it become plain text."""
    parser = _WikitextParser(link_titles or {})
    parser.feed(html)
    parser.close()
    return parser.page()


class _WikitextParser(HTMLParser):
    def __init__(self, link_titles: Mapping[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self._link_titles = link_titles
        self._blocks: list[tuple[str, str]] = []  # (kind, text); kind is "para", "item" or "pre"
        self._inline: list[str] = []
        self._prefix = ""  # the list marker of the block being collected ("" for a paragraph)
        self._lists: list[str] = []  # "*" or "#" per open list
        self._heading: int | None = None
        self._skip_depth = 0  # > 0 while inside skipped markup, counting nested tags
        self._pre_depth = 0
        self._pre: list[str] = []
        self._cells_in_row = 0
        self._table_depth = 0
        self._link: tuple[str, list[str]] | None = None  # (target title, text collected so far)
        self._in_title = False
        self._title: list[str] = []

    # -- parser callbacks ------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self._void(tag)
            return
        if tag == "title":
            self._in_title = True
        if self._skip_depth:
            self._skip_depth += 1
            return
        attributes = dict(attrs)
        classes = set((attributes.get("class") or "").split())
        if tag in _SKIPPED_TAGS or classes & _SKIPPED_CLASSES:
            self._skip_depth = 1
            return
        if self._pre_depth:
            self._pre_depth += 1
            return
        if tag == "pre":
            self._flush()
            self._pre_depth = 1
            self._pre = []
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in ("ul", "ol"):
            self._flush()
            self._lists.append("*" if tag == "ul" else "#")
        elif tag == "li":
            self._flush()
            self._prefix = "".join(self._lists) or "*"
        elif tag == "tr":
            self._flush()
            self._prefix = "*"
            self._cells_in_row = 0
        elif tag in ("td", "th"):
            if self._cells_in_row:
                self._inline.append(" — ")
            self._cells_in_row += 1
        elif tag in _BLOCKS:
            if tag == "table":
                self._table_depth += 1
            # Inside a list item or a table cell, a paragraph continues the same line.
            if self._prefix:
                self._inline.append(" ")
            else:
                self._flush()
        elif tag in ("strong", "b") and not self._heading:
            self._inline.append("'''")
        elif tag == "a":
            target = self._link_target(attributes.get("href"))
            if target is not None:
                self._link = (target, [])

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if tag == "title":
            self._in_title = False
        if self._skip_depth:
            self._skip_depth -= 1
            return
        if self._pre_depth:
            self._pre_depth -= 1
            if self._pre_depth == 0:
                self._end_pre()
            return
        if tag in _HEADINGS:
            self._flush()
        elif tag in ("ul", "ol"):
            self._flush()
            if self._lists:
                self._lists.pop()
            self._prefix = ""
        elif tag in ("li", "tr"):
            self._flush()
            self._prefix = ""
        elif tag in ("strong", "b") and not self._heading:
            self._inline.append("'''")
        elif tag == "a" and self._link is not None:
            target, words = self._link
            self._link = None
            text = _SPACES.sub(" ", "".join(words)).strip()
            if text:
                self._inline.append(f"[[{target}|{text}]]" if text != target else f"[[{target}]]")
        elif tag in _BLOCKS:
            if tag == "table":
                self._table_depth = max(0, self._table_depth - 1)
            if not self._prefix:
                self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        if self._skip_depth:
            return
        if self._pre_depth:
            self._pre.append(data)
        elif self._link is not None:
            self._link[1].append(data)
        else:
            self._inline.append(data)

    # -- helpers ---------------------------------------------------------------------------

    def _void(self, tag: str) -> None:
        if self._skip_depth:
            return
        if tag == "br":
            (self._pre if self._pre_depth else self._inline).append("\n" if self._pre_depth else " ")
        elif tag == "hr" and not self._pre_depth and not self._prefix:
            self._flush()

    def _link_target(self, href: str | None) -> str | None:
        if not href or "://" in href or href.startswith("mailto:"):
            return None
        return self._link_titles.get(href.split("#", 1)[0])

    def _flush(self) -> None:
        text = _SPACES.sub(" ", "".join(self._inline)).strip()
        text = text.replace("''''''", "").replace("''' '''", " ")
        self._inline = []
        if text and text != "'''":
            if self._heading is not None:
                marks = "=" * self._heading
                self._blocks.append(("heading", f"{marks} {clean_title(text)} {marks}"))
            elif self._prefix:
                self._blocks.append(("item", f"{self._prefix} {text}"))
            else:
                self._blocks.append(("para", text))
        self._heading = None

    def _end_pre(self) -> None:
        code = "".join(self._pre).strip("\n").rstrip()
        self._pre = []
        if code.strip():
            self._blocks.append(("pre", f"<pre>\n{code.replace('</pre>', '&lt;/pre&gt;')}\n</pre>"))

    def page(self) -> WikiPage:
        self._flush()
        title = clean_title("".join(self._title))
        blocks = list(self._blocks)
        # MediaWiki shows the title above the page: drop a first heading that only repeats it.
        if blocks and blocks[0][0] == "heading" and blocks[0][1].strip("= ") == title:
            blocks = blocks[1:]
        out: list[str] = []
        previous = ""
        for kind, text in blocks:
            if out:
                out.append("\n" if kind == "item" and previous == "item" else "\n\n")
            out.append(text)
            previous = kind
        return WikiPage(title=title, text="".join(out).strip() + "\n")
