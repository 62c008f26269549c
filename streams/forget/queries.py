"""The searches of the deletion lane, shared by expand, erase and verify: what "names" and "mentions"
mean to the index."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from streams.pipeline.mentions import MentionPattern

MENTION_FIELDS = ("text", "title", "section")

# The index may stem what it keeps (the english analyzer keeps "Moses" as "mose", the end of
# "mailto:priya.moses" as "mailto:priya.mose"), and a term-level query (prefix, wildcard) is not
# analysed: a wildcard asks only for the first letters of a piece, those a stemmer leaves alone
# (Porter rewrites at most the last six letters of a word), and a `match` asks for a whole word the
# way the index analyses it.
STEM_SLACK = 6
MIN_PIECE = 4


def _stem_safe(piece: str) -> str:
    """The start of `piece` that its stemmed form keeps (never shorter than MIN_PIECE letters)."""
    return piece[: max(MIN_PIECE, len(piece) - STEM_SLACK)]


def _pieces(word: str) -> list[str]:
    """The pieces a tokenizer splits `word` into at hyphens, dots and underscores (a name or a local part)."""
    return [piece for piece in re.split(r"[-._+']+", word) if piece]


def naming(kind: str, identifiers: Iterable[str]) -> dict[str, Any]:
    """Records of `kind` ("state" or "chunk") whose `subjects` name one of `identifiers`."""
    return {"bool": {"filter": [{"term": {"kind": kind}}, {"terms": {"subjects": sorted(identifiers)}}]}}


def _candidates(pattern: MentionPattern, field_name: str) -> list[dict[str, Any]]:
    """Queries that find every chunk that may hold `pattern`, whatever the analyzer made of it.

    A phrase query alone misses written variants that the standard tokenizer keeps as one token
    ("mailto:priya.park" because ':' joins letters, "Park's", "5555550123"), so each pattern also
    asks for its most distinctive piece; the redactor then confirms or rejects each candidate.
    """
    queries: list[dict[str, Any]] = [{"match_phrase": {field_name: {"query": pattern.phrase()}}}]
    form = pattern.normalized
    if pattern.kind == "email":
        # Its longest piece, which a tokenizer may glue to other text ("mailto:priya.park" is one token).
        longest = max(_pieces(form.split("@", 1)[0]), key=len, default="")
        if longest:
            queries.append({"wildcard": {field_name: {"value": f"*{_stem_safe(longest)}*", "case_insensitive": True}}})
    elif pattern.kind == "name":
        # Every written form holds the surname (an ambiguous one only that and an initial or a title):
        # folded and as written (the index keeps accents), each piece of a hyphenated one on its own;
        # as the index analyses a word (a stemmer's "mose"), and as a prefix (a tokenizer's "moses's").
        written = [piece for word in pattern.value.casefold().split()[-1:] for piece in _pieces(word)]
        for word in dict.fromkeys([*_pieces(pattern.surname), *written]):
            queries.append({"match": {field_name: {"query": word}}})
            queries.append({"prefix": {field_name: {"value": word, "case_insensitive": True}}})
    elif pattern.kind == "phone":
        last10 = form[-10:]
        queries.append({"match_phrase": {field_name: {"query": f"{last10[:3]} {last10[3:6]} {last10[6:]}"}}})
        queries.append({"bool": {"filter": [{"term": {field_name: last10[6:]}}, {"term": {field_name: last10[3:6]}}]}})
        queries.append({"wildcard": {field_name: {"value": f"*{last10}"}}})
        # However the number is grouped ("030 1234567", "+49 (0)30 123 4567"), its last group is a
        # suffix of the national number of four digits or more: a candidate the redactor then confirms.
        suffixes = {form[-length:] for form in pattern.forms() for length in range(4, len(form) + 1)}
        queries.append({"terms": {field_name: sorted(suffixes)}})
        # Dots keep a number one token ("555.234.5678"): it ends with the number's last four digits.
        queries.append({"wildcard": {field_name: {"value": f"*{form[-4:]}"}}})
    return queries


def mention_query(patterns: set[MentionPattern]) -> dict[str, Any]:
    """Chunks whose text, title or section may contain any pattern (no subject filter)."""
    should = [
        query
        for pattern in sorted(patterns, key=str)
        for name in MENTION_FIELDS
        for query in _candidates(pattern, name)
    ]
    return {"bool": {"filter": [{"term": {"kind": "chunk"}}], "should": should, "minimum_should_match": 1}}
