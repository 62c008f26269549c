"""Cut a part's text into chunks whose boundaries survive edits.

Why boundaries must be stable: a chunk is re-embedded exactly when its text (hash) changes, so the
cost of an edit is the number of chunk texts it changes. Greedy packing ("fill each chunk up to
max_tokens, in order") fails that: lengthening one paragraph pushes a paragraph into the next
chunk, which pushes one into the one after, and an edit near the top re-embeds the whole page.

The scheme here decides every boundary locally:

1. Structure first. The text is parsed into sections (wikitext headings at any level, HTML h1-h6)
   and paragraphs (blank lines; HTML p/li/pre/td/...) by ``parse_wikitext`` (mwparserfromhell),
   ``parse_html`` (lxml) and ``parse_mail`` (a reply without its quoted history). A chunk never
   spans two sections.
2. One chunk per paragraph. A paragraph of at least ``max_tokens // 8`` tokens ends its chunk.
3. Short paragraphs (a lead-in line, a one-line list item) merge *forward* into the next paragraph,
   so "Steps:" travels with the steps. A run of short paragraphs (HTML list items, table cells) is
   cut by content: after a short paragraph whose text hash is 0 mod 4 (a content-defined anchor,
   as in rsync/CDC chunking; never after a lead-in ending with a colon), and, as a last resort,
   where the run would exceed the budget (rare: ~25 short paragraphs in a row without an anchor).
4. A paragraph longer than the budget is split on sentence boundaries (also CJK ones: 。！？),
   then on words; only the pieces of that one paragraph overlap (by ``overlap_tokens``), so the
   overlap never couples neighbouring paragraphs. Its first piece always leaves room for a short
   lead-in, so its pieces never depend on the paragraphs before it.
5. A "word" that alone is longer than the window (a 100,000-character token, 18,000 characters of
   CJK text without spaces) is cut into pieces of at most ``MAX_WORD_CHARS`` characters and of at
   most the budget's tokens. Without this it would become one huge chunk that the model silently
   truncates to its window (and a WordPiece tokenizer counts a word over 100 characters as a single
   [UNK], so counting tokens alone would not see it).

So an edit changes the chunk holding the paragraph and, when the paragraph crosses the short/long
line or its anchor status flips, the neighbouring chunk it merges with or separates from: at most
two chunk texts for ordinary paragraphs, and only the edited paragraph's pieces for an oversized
one. Everything after the next paragraph boundary is untouched. (A heading edit changes its
section's chunks, by design: the heading is part of each chunk's text.)

Each chunk's text starts with its heading path ("Install > Linux") so headings are searchable by
BM25 and give the embedding its context.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from itertools import groupby, pairwise

from streams.errors import ChunkingError
from streams.pipeline.parse_html import html_blocks
from streams.pipeline.parse_mail import reply_blocks, reply_html_blocks
from streams.pipeline.parse_wikitext import wikitext_blocks
from streams.pipeline.sections import Block
from streams.pipeline.sections import paragraphs as plain_paragraphs
from streams.records import ChunkText, TextFormat

CountTokens = Callable[[str], int]
# Names how chunks are cut: bump it when a change to this module cuts the same text differently, so
# every chunk's provenance (`chunker` in the index) says which cut made it.
# "sections-2": wikitext parsed by mwparserfromhell, HTML by lxml, and mail replies without their quoted
# history (the paragraphs a page or message yields changed, so its chunk texts did too).
# "sections-3": an oversized paragraph's first piece always leaves a lead-in's room (its pieces no
# longer move when the paragraph before it is edited).
CHUNKER_ALGORITHM = "sections-3"


def chunker_version(max_tokens: int, overlap_tokens: int) -> str:
    """The chunker's algorithm and parameters, e.g. ``sections-3/max254/overlap32``."""
    return f"{CHUNKER_ALGORITHM}/max{max_tokens}/overlap{overlap_tokens}"


ANCHOR_MODULUS = 4
SHORT_FRACTION = 8

# BERT-style tokenizers give every CJK ideograph (and kana) a token of its own.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_PIECES = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+|[^\w\s]")
# WordPiece's max_input_chars_per_word: a longer word is one [UNK] token to the model.
MAX_WORD_CHARS = 100


def approximate_tokens(text: str) -> int:
    """Word pieces, estimated without a tokenizer: each word costs 1 plus 1 per 4 further letters.

    Calibrated against the all-MiniLM-L6-v2 WordPiece vocabulary on English prose, it errs high
    (mean 1.2x, 5th percentile 0.94x), so chunks rarely exceed the model's window. It is additive
    over words, which the splitter relies on.
    """
    total = 0
    for piece in _PIECES.findall(text):
        if piece[0].isalpha():
            total += 1 + (len(piece) - 1) // 4
        elif piece[0].isdigit():
            total += 1 + (len(piece) - 1) // 3
        else:
            total += 1
    return total


def chunk_text(
    text: str,
    text_format: TextFormat,
    *,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    count_tokens: CountTokens | None = None,
) -> list[ChunkText]:
    """Chunks of one part's text, numbered 0..n-1 (see the module docstring for the boundaries)."""
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, not {max_tokens}")
    if overlap_tokens < 0:
        raise ValueError(f"overlap_tokens must not be negative, not {overlap_tokens}")
    if not text or not text.strip():
        return []
    count = count_tokens or approximate_tokens
    chunks: list[tuple[str, str]] = []
    for section, blocks in groupby(parse_blocks(text, text_format), key=lambda block: block[0]):
        # The heading prefix is part of every chunk of the section, so it spends budget.
        budget = max(max_tokens - (count(section) + 1 if section else 0), max_tokens // 2)
        paragraphs = [paragraph for _, paragraph in blocks]
        chunks.extend((section, body) for body in pack_section(paragraphs, budget, overlap_tokens, count))
    return [
        ChunkText(number=number, text=f"{section}\n{body}" if section else body, section=section)
        for number, (section, body) in enumerate(chunks)
    ]


_PARSERS: dict[str, Callable[[str], list[Block]]] = {
    "plain": lambda text: [("", paragraph) for paragraph in plain_paragraphs(text)],
    "wikitext": wikitext_blocks,
    "html": html_blocks,
    "email": reply_blocks,
    "email_html": reply_html_blocks,
}


def parse_blocks(text: str, text_format: TextFormat) -> list[Block]:
    """(section path, paragraph) pairs in document order, markup stripped, empty paragraphs dropped."""
    parse = _PARSERS.get(text_format)
    if parse is None:
        raise ChunkingError(f"unknown text format {text_format!r}")
    return parse(text)


def pack_section(paragraphs: list[str], budget: int, overlap: int, count: CountTokens) -> list[str]:
    """Group one section's paragraphs into chunk bodies with locally decided boundaries."""
    short = max(1, budget // SHORT_FRACTION)
    bodies: list[str] = []
    group: list[str] = []
    group_tokens = 0
    for paragraph in paragraphs:
        tokens = count(paragraph)
        if tokens > budget or _has_long_word(paragraph):
            # A short lead-in stays with the paragraph's first piece, as it would with a whole one,
            # so growing a paragraph past the budget does not also orphan its lead-in. The first piece
            # leaves the lead-in's room whether or not one comes: were the room the lead-in's own
            # length, an edit that lengthened or shortened the paragraph before (a table's caption, a
            # lead-in line) would move every piece boundary of the long paragraph after it.
            lead_room = budget // 4
            lead = "\n\n".join(group)
            if group and group_tokens > lead_room:
                bodies.append(lead)
                lead = ""
            pieces = split_paragraph(paragraph, budget, overlap, count, reserved=lead_room)
            if lead:
                pieces[0] = f"{lead}\n\n{pieces[0]}" if pieces[0] else lead
            bodies.extend(piece for piece in pieces if piece)
            group, group_tokens = [], 0
            continue
        if group and group_tokens + tokens > budget:
            bodies.append("\n\n".join(group))
            group, group_tokens = [], 0
        group.append(paragraph)
        group_tokens += tokens
        if tokens >= short or _is_anchor(paragraph):
            bodies.append("\n\n".join(group))
            group, group_tokens = [], 0
    if group:
        bodies.append("\n\n".join(group))
    return bodies


def _is_anchor(paragraph: str) -> bool:
    """Whether a short paragraph ends its chunk. It depends on the paragraph alone, never on the run
    it sits in, so an edit can only move the boundary right after the edited paragraph. A lead-in
    (ending with a colon) never ends a chunk: it belongs with what it introduces."""
    if paragraph.rstrip().endswith(":"):
        return False
    # sha256, not hash(): boundaries must be the same in every process and every run.
    return hashlib.sha256(paragraph.encode("utf-8")).digest()[0] % ANCHOR_MODULUS == 0


def split_paragraph(paragraph: str, budget: int, overlap: int, count: CountTokens, *, reserved: int = 0) -> list[str]:
    """Pieces of one oversized paragraph: sentences packed up to the budget, each piece after the
    first opening with the previous piece's last ``overlap`` tokens of words. ``reserved`` tokens of
    the first piece belong to a lead-in the caller prepends (the first piece may then be empty)."""
    overlap = min(overlap, budget // 4)
    step = budget - overlap
    units: list[tuple[str, int]] = []
    for sentence in _sentences(paragraph):
        tokens = count(sentence)
        fits = tokens <= step and not _has_long_word(sentence)
        units.extend([(sentence, tokens)] if fits else _word_windows(sentence, step, count))
    pieces: list[str] = []
    current: list[str] = []
    current_tokens = reserved
    for unit, tokens in units:
        if (current or current_tokens) and current_tokens + tokens > step:
            pieces.append(" ".join(current))
            current, current_tokens = [], 0
        current.append(unit)
        current_tokens += tokens
    if current:
        pieces.append(" ".join(current))
    overlapped = pieces[:1]
    for previous, piece in pairwise(pieces):
        tail = _tail_words(previous, overlap, count) if previous else ""
        overlapped.append(f"{tail} {piece}" if tail else piece)
    return overlapped


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\s*\n\s*")


def _sentences(paragraph: str) -> list[str]:
    return [sentence for sentence in _SENTENCE_END.split(paragraph) if sentence.strip()]


_LONG_WORD = re.compile(rf"\S{{{MAX_WORD_CHARS + 1}}}")


def _has_long_word(text: str) -> bool:
    return _LONG_WORD.search(text) is not None


def _split_word(word: str, limit: int, count: CountTokens) -> Iterator[str]:
    """Pieces of one oversized word, each at most MAX_WORD_CHARS characters and `limit` tokens."""
    start = 0
    while start < len(word):
        end = min(start + MAX_WORD_CHARS, len(word))
        while end - start > 1 and count(word[start:end]) > limit:
            end = start + (end - start) // 2
        yield word[start:end]
        start = end


def _words(sentence: str, limit: int, count: CountTokens) -> Iterator[str]:
    for word in sentence.split():
        if len(word) > MAX_WORD_CHARS or count(word) > limit:
            yield from _split_word(word, limit, count)
        else:
            yield word


def _word_windows(sentence: str, limit: int, count: CountTokens) -> Iterator[tuple[str, int]]:
    window: list[str] = []
    tokens = 0
    for word in _words(sentence, limit, count):
        cost = count(word)
        if window and tokens + cost > limit:
            yield " ".join(window), tokens
            window, tokens = [], 0
        window.append(word)
        tokens += cost
    if window:
        yield " ".join(window), tokens


def _tail_words(text: str, limit: int, count: CountTokens) -> str:
    words = text.split()
    taken: list[str] = []
    tokens = 0
    for word in reversed(words):
        cost = count(word)
        if tokens + cost > limit:
            break
        taken.append(word)
        tokens += cost
    return " ".join(reversed(taken))
