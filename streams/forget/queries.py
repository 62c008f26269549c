"""The searches of the deletion lane, shared by expand, erase and verify: what "names" and "mentions"
mean to the index."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.pipeline.mentions import MentionPattern

MENTION_FIELDS = ("text", "title", "section")


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
        local = form.split("@", 1)[0]
        queries.append({"wildcard": {field_name: {"value": f"*{local}*", "case_insensitive": True}}})
    elif pattern.kind == "name":
        # Every written form holds the surname (an ambiguous one only that and an initial or a title):
        # as written in the pattern and without its accents, since the index keeps them.
        surnames = dict.fromkeys([pattern.surname, *pattern.value.casefold().split()[-1:]])
        queries += [{"prefix": {field_name: {"value": word, "case_insensitive": True}}} for word in surnames]
    elif pattern.kind == "phone":
        last10 = form[-10:]
        queries.append({"match_phrase": {field_name: {"query": f"{last10[:3]} {last10[3:6]} {last10[6:]}"}}})
        queries.append({"bool": {"filter": [{"term": {field_name: last10[6:]}}, {"term": {field_name: last10[3:6]}}]}})
        queries.append({"wildcard": {field_name: {"value": f"*{last10}"}}})
        # However the number is grouped ("030 1234567", "+49 (0)30 123 4567"), its last group is a
        # suffix of the national number of four digits or more: a candidate the redactor then confirms.
        suffixes = {form[-length:] for form in pattern.forms() for length in range(4, len(form) + 1)}
        queries.append({"terms": {field_name: sorted(suffixes)}})
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
