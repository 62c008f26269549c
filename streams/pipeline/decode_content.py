"""Stored content as real applications keep it, decoded into text by the values of other columns.

MediaWiki keeps a revision's text in ``text.old_text`` with ``old_flags`` saying how: ``utf-8``,
``gzip`` (PHP's gzdeflate: a raw deflate stream, no gzip header), ``external`` (the row holds an
address in an external store such as ``DB://cluster1/42``, which only MediaWiki can resolve) or
``object`` (a serialised PHP object). Request Tracker keeps a message part in ``attachments.content``
with ``contentencoding`` (base64, quoted-printable, none) and ``contenttype``; text/plain and text/html
are indexed, every other type is skipped (and counted), and a multipart container holds no text of
its own.

What cannot be decoded raises UndecodableContent with the reason: its part becomes a dead letter
while the other parts go on.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import zlib
from dataclasses import dataclass

from streams.errors import MappingError
from streams.records import TextFormat

# MediaWiki's old_flags this reader understands; `external` and `object` are known and refused.
READABLE_FLAGS = frozenset({"utf-8", "gzip"})
INDEXED_TYPES = frozenset({"text/plain", "text/html"})
# A text part in which more than this share of characters are control characters is not text.
MAX_CONTROL_SHARE = 0.01
_HTML_FORMAT: dict[str, TextFormat] = {
    "plain": "html",
    "email": "email_html",
    "html": "html",
    "email_html": "email_html",
}


class UndecodableContent(MappingError):
    """A stored body the mapping's decode rules cannot turn into text."""

    stage = "decode-content"


@dataclass(frozen=True)
class Skipped:
    """A part that is not text by its own label (an image, a PDF): not indexed, not an error."""

    content_type: str


def _text(raw: bytes | str, charset: str | None, what: str) -> str:
    if isinstance(raw, str):
        text = raw
    else:
        name = (charset or "utf-8").strip().lower() or "utf-8"
        try:
            codecs.lookup(name)
        except LookupError as exc:
            raise UndecodableContent(f"{what}: unknown charset {name!r}") from exc
        try:
            text = raw.decode(name)
        except UnicodeDecodeError as exc:
            raise UndecodableContent(f"{what}: not valid {name} text (binary content labelled as text?)") from exc
    if "\x00" in text or _control_share(text) > MAX_CONTROL_SHARE:
        raise UndecodableContent(f"{what}: binary content labelled as text (control characters in the text)")
    return text


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    control = sum(1 for char in text if ord(char) < 32 and char not in "\t\n\r\f")
    return control / len(text)


def _as_bytes(raw: bytes | str | None) -> bytes:
    if raw is None:
        return b""
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def mediawiki_text(raw: bytes | str | None, flags: bytes | str | None, max_bytes: int) -> str:
    """A MediaWiki text row's content, by its old_flags."""
    text_flags = (flags.decode() if isinstance(flags, bytes) else flags or "").strip()
    names = [flag.strip() for flag in text_flags.split(",") if flag.strip()]
    if "external" in names:
        address = _as_bytes(raw)[:200].decode("utf-8", "replace")
        raise UndecodableContent(f"text is in an external store ({address!r}); only MediaWiki can read it")
    if unknown := [flag for flag in names if flag not in READABLE_FLAGS]:
        raise UndecodableContent(f"text flag(s) {', '.join(unknown)} (old_flags {text_flags!r}) cannot be decoded")
    data = _as_bytes(raw)
    if "gzip" in names:
        try:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            data = inflater.decompress(data, max_bytes + 1)
        except zlib.error as exc:
            raise UndecodableContent(f"text flagged gzip is not a deflate stream: {exc}") from exc
    if len(data) > max_bytes:
        raise UndecodableContent(f"text is over the size guard ({max_bytes:,} bytes)")
    return _text(data, "utf-8", "text")


def message_part(
    raw: bytes | str | None,
    encoding: bytes | str | None,
    content_type: bytes | str | None,
    charset: bytes | str | None,
    max_bytes: int,
) -> str | Skipped:
    """An RT attachment's text, by its content encoding, type and charset; Skipped for other types."""
    kind = _label(content_type).split(";", 1)[0].strip().lower() or "text/plain"
    if kind not in INDEXED_TYPES:
        return Skipped(kind)
    scheme = _label(encoding).strip().lower() or "none"
    size = len(raw) if raw is not None else 0
    if size > max_bytes * 4 // 3 + 4:  # base64 of max_bytes: decode nothing that cannot fit
        raise UndecodableContent(f"{kind} part of {size:,} bytes is over the size guard ({max_bytes:,} bytes)")
    if scheme == "base64":
        try:
            data: bytes | str = base64.b64decode(_as_bytes(raw), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise UndecodableContent(f"{kind} part is not valid base64: {exc}") from exc
    elif scheme == "quoted-printable":
        data = quopri.decodestring(_as_bytes(raw))
    elif scheme == "none":
        data = raw if raw is not None else ""
    else:
        raise UndecodableContent(f"{kind} part has an unknown content encoding {scheme!r}")
    if len(data) > max_bytes:
        raise UndecodableContent(f"{kind} part of {len(data):,} bytes is over the size guard ({max_bytes:,} bytes)")
    return _text(data, _label(charset) or None, kind)


def html_variant(text_format: TextFormat) -> TextFormat:
    """The format a text/html part of a body of `text_format` is chunked as."""
    return _HTML_FORMAT.get(text_format, "html")


def _label(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
