"""Write one HTML documentation page as MediaWiki wikitext, from the tree lxml parses.

The output uses the small part of wikitext that real wiki pages lean on: ``== Heading ==``,
paragraphs separated by blank lines, ``*``/``#`` list items, ``<pre>`` blocks for code and
``[[Target|text]]`` links between pages of the same corpus. Navigation chrome (the DocBook
``navheader``/``navfooter`` and tables of contents) is dropped: it is not what a person writes.

No library writes wikitext from HTML without pandoc (Debian's is 168 MB installed, for one seed step), so the
writer is this walk over lxml's tree; the markup is read by lxml, never by patterns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import lxml.html

# Leading numbering that DocBook puts in titles: "Chapter 5. ", "Appendix F. ", "5.1.2. ", "F.3. ".
_NUMBERING = re.compile(r"^(?:(?:Chapter|Appendix|Part)\s+[\w.]+\.?\s+|[A-Z]?\d*(?:\.\d+)*\.\s+)")
_SPACES = re.compile(r"\s+")
_SKIPPED_CLASSES = frozenset({"navheader", "navfooter", "toc", "indexterm", "list-of-tables", "list-of-figures"})
_SKIPPED_TAGS = frozenset({"head", "script", "style"})
_HEADINGS = {"h1": 2, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 5}
_BLOCKS = frozenset({"p", "div", "dl", "dt", "dd", "blockquote", "caption", "section", "hr", "body"})
_LISTS = {"ul": "*", "ol": "#"}


@dataclass(frozen=True)
class WikiPage:
    title: str
    text: str


def clean_title(title: str) -> str:
    """A page or heading title without DocBook numbering ("5.1. Table Basics" -> "Table Basics")."""
    title = _SPACES.sub(" ", title).strip()
    return _NUMBERING.sub("", title, count=1).strip() or title


def page_title(html: str) -> str:
    """The page's ``<title>``, without DocBook numbering ("" when it has none)."""
    head = lxml.html.document_fromstring(html.encode("utf-8"), parser=_parser()).find("head")
    return clean_title(head.findtext("title") or "") if head is not None else ""


def _parser() -> lxml.html.HTMLParser:
    return lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)


def html_to_wikitext(html: str, link_titles: Mapping[str, str] | None = None) -> WikiPage:
    """Convert an HTML page. ``link_titles`` maps a linked file name ("sql-select.html") to the
    title of the wiki page made from it; links to files outside it become plain text."""
    root = lxml.html.document_fromstring(html.encode("utf-8"), parser=_parser())
    title = clean_title(root.findtext(".//title") or "")
    for element in list(root.iter()):
        classes = set((element.get("class") or "").split())
        if element.getparent() is not None and (element.tag in _SKIPPED_TAGS or classes & _SKIPPED_CLASSES):
            element.drop_tree()  # keeps the text that follows it
    writer = _Writer(link_titles or {})
    writer.block(root.find("body") if root.find("body") is not None else root)
    writer.flush()
    return writer.page(title)


class _Writer:
    def __init__(self, link_titles: Mapping[str, str]) -> None:
        self.link_titles = link_titles
        self.blocks: list[tuple[str, str]] = []  # (kind, wikitext); kind is heading, para, item or pre
        self.inline: list[str] = []

    def block(self, element: lxml.html.HtmlElement) -> None:
        """Blocks of an element whose children may be blocks: paragraphs, headings, lists, code."""
        self.inline.append(element.text or "")
        for child in element:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag == "pre":
                self.flush()
                code = child.text_content().strip("\n").rstrip()
                if code.strip():
                    self.blocks.append(("pre", f"<pre>\n{code.replace('</pre>', '&lt;/pre&gt;')}\n</pre>"))
            elif tag in _HEADINGS:
                self.flush()
                if text := clean_title(self.text(child, bold=False)):
                    marks = "=" * _HEADINGS[tag]
                    self.blocks.append(("heading", f"{marks} {text} {marks}"))
            elif tag in _LISTS:
                self.flush()
                self.list(child, _LISTS[tag])
            elif tag == "table":
                self.flush()
                for row in child.iter("tr"):
                    cells = [self.text(cell) for cell in row if cell.tag in ("td", "th")]
                    if line := " — ".join(cell for cell in cells if cell):
                        self.blocks.append(("item", f"* {line}"))
            elif tag in _BLOCKS:
                self.flush()
                self.block(child)
                self.flush()
            else:
                _append_inline(self.inline, self.inline_element(child, bold=True))
            self.inline.append(child.tail or "")

    def list(self, element: lxml.html.HtmlElement, prefix: str) -> None:
        for item in element:
            if item.tag != "li":
                continue
            # Lists inside the item (also inside its paragraphs) are written after the item's own
            # line, one level deeper.
            nested = [
                inner
                for inner in item.iter("ul", "ol")
                if inner is not item and next(inner.iterancestors("li"), None) is item
            ]
            for inner in nested:
                inner.drop_tree()
            if text := self.text(item):
                self.blocks.append(("item", f"{prefix} {text}"))
            for inner in nested:
                self.list(inner, prefix + _LISTS[inner.tag])

    def text(self, element: lxml.html.HtmlElement, *, bold: bool = True) -> str:
        """An element's content as one line of inline wikitext: bold, links within the corpus."""
        return _SPACES.sub(" ", self._content(element, bold=bold)).strip()

    def _content(self, element: lxml.html.HtmlElement, *, bold: bool) -> str:
        parts = [element.text or ""]
        for child in element:
            _append_inline(parts, self.inline_element(child, bold=bold))
            parts.append(child.tail or "")
        return "".join(parts)

    def inline_element(self, element: lxml.html.HtmlElement, *, bold: bool) -> str:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag == "br":
            return " "
        inner = self._content(element, bold=bold)
        if tag in _BLOCKS or tag in ("pre", "table", "tr", "td", "th", "li"):
            return f" {inner} "  # inside a list item or a table cell, a paragraph continues the line
        if tag in ("strong", "b") and bold and inner.strip():
            return f"'''{inner.strip()}'''"
        if tag == "a" and (target := self._link_target(element.get("href"))) is not None and inner.strip():
            text = _SPACES.sub(" ", inner).strip()
            return f"[[{target}|{text}]]" if text != target else f"[[{target}]]"
        return inner

    def _link_target(self, href: str | None) -> str | None:
        if not href or "://" in href or href.startswith("mailto:"):
            return None
        return self.link_titles.get(href.split("#", 1)[0])

    def flush(self) -> None:
        text = _SPACES.sub(" ", "".join(self.inline)).strip()
        self.inline = []
        if text:
            self.blocks.append(("para", text))

    def page(self, title: str) -> WikiPage:
        blocks = self.blocks
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


def _append_inline(parts: list[str], piece: str) -> None:
    # A "[" before a link (a synopsis's optional argument: "[[[psql|pattern]] ]") makes "[[[", which
    # parsers read as an external link's bracket: an empty nowiki keeps the two apart.
    if piece.startswith("[[") and next((part for part in reversed(parts) if part), "").endswith("["):
        parts.append("<nowiki/>")
    parts.append(piece)
