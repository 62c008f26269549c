"""A message's own text: the quoted history of a mail reply dropped, so each chunk is what is new.

quotequail (maintained, offline, plain text and HTML) finds where the history starts: an
attribution line ("On Tue, 3 Mar 2026, Priya Park wrote:", also wrapped over two lines and in
other languages), Outlook's "-----Original Message-----" and "From: ... Sent: ..." headers, a
forwarded message's header, gmail's ``gmail_quote`` and a ``<blockquote>``. It stops at the first
one; what it leaves is then cleared of quoting that is interleaved with the answer: plain lines
starting with ``>``, and every quoting element of the HTML (``_QUOTE_CLASSES``, ``blockquote``).

The text after the history (a bottom-posted answer) is kept. A message with nothing but history
has no text of its own, and so no chunks: the history is indexed with the message it came from.

quotequail reads about 10,000 plain lines or 20,000 HTML lines a second, so a message up to the
4 MB event limit would hold the worker for minutes. It reads a plain message's first
``SCANNED_LINES`` lines (history starts near the top of a reply; past them only ``>`` lines are
dropped) and HTML up to ``SCANNED_HTML_CHARS`` characters (past that, only the quoting elements).
"""

from __future__ import annotations

import quotequail
from lxml.html import HtmlElement

from streams.pipeline.parse_html import html_blocks
from streams.pipeline.sections import Block, paragraphs

# gmail, Yahoo, Thunderbird (the attribution above a quote), Apple Mail and Outlook on the web.
_QUOTE_CLASSES = frozenset({"gmail_quote", "yahoo_quoted", "moz-cite-prefix", "AppleOriginalContents"})


SCANNED_LINES = 2_000
SCANNED_HTML_CHARS = 500_000


def reply_text(text: str) -> str:
    """A plain-text message without its quoted history."""
    lines = text.replace("\r\n", "\n").split("\n")
    head, rest = lines[:SCANNED_LINES], lines[SCANNED_LINES:]
    found = quotequail.unwrap("\n".join(head))
    if found is not None:
        bottom = found.get("text_bottom")
        # History that reaches the end of the scanned lines goes on past them.
        kept = [found.get("text_top"), bottom, "\n".join(rest) if bottom else None]
        lines = "\n\n".join(part for part in kept if part).split("\n")
    return "\n".join(line for line in lines if not line.lstrip().startswith(">"))


def reply_blocks(text: str) -> list[Block]:
    return [("", paragraph) for paragraph in paragraphs(reply_text(text))]


def reply_html(html: str) -> str:
    """An HTML message without the history quotequail recognises (the first quote and what follows)."""
    if not html.strip() or len(html) > SCANNED_HTML_CHARS:
        return html
    found = quotequail.unwrap_html(html)
    if found is None:
        return html
    return "".join(part for part in (found.get("html_top"), found.get("html_bottom")) if part)


def reply_html_blocks(html: str) -> list[Block]:
    blocks = html_blocks(reply_html(html), skip=is_quote)
    kept = []
    for section, paragraph in blocks:
        lines = [line for line in paragraph.split("\n") if not line.lstrip().startswith(">")]
        if any(line.strip() for line in lines):
            kept.append((section, "\n".join(lines)))
    return kept


def is_quote(element: HtmlElement) -> bool:
    if element.tag == "blockquote":
        return True
    classes = set((element.get("class") or "").split())
    return bool(classes & _QUOTE_CLASSES)
