"""Who a request forgets: the subject's identifiers, through identity records, and how the person is
written in other people's text.

Identity records (a CRM contact) link identifiers (its email and contact id name one person) and hold
how the person is written (full name, phone): `expand_identities` collects both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from elasticsearch import AsyncElasticsearch

from streams.forget.queries import naming
from streams.pipeline.mentions import MENTION_KINDS, MentionKind, MentionPattern

PAGE = 1000
MAX_HOPS = 5  # identity records linking identifiers that link further identity records


@dataclass
class Identity:
    """Everything a request forgets: identifiers (subjects) and how the person is written (patterns)."""

    identifiers: set[str]
    patterns: set[MentionPattern] = field(default_factory=set)


def mention_patterns(identifiers: set[str], written: Sequence[Sequence[str]] = ()) -> set[MentionPattern]:
    """Email identifiers are written as themselves, and a local part such as ``priya.park`` also as
    the name it spells; a real name (``name:``) as itself; identity records add the full name and phone."""
    emails = [name.split(":", 1)[1] for name in identifiers if name.startswith("email:")]
    patterns = {MentionPattern("email", email) for email in emails}
    patterns |= {MentionPattern("name", name.split(":", 1)[1]) for name in identifiers if name.startswith("name:")}
    for email in emails:
        pieces = re.split(r"[._-]+", email.rpartition("@")[0])
        if len(pieces) >= 2 and all(len(piece) >= 2 and piece.isalpha() for piece in pieces):
            patterns.add(MentionPattern("name", " ".join(pieces)))
    for kind, value in written:
        if kind in MENTION_KINDS and value:
            patterns.add(MentionPattern(cast(MentionKind, kind), value))
    return {pattern for pattern in patterns if pattern.usable()}


async def generations(client: AsyncElasticsearch, alias: str) -> list[str]:
    """The concrete indices of an alias or an index expression ("streams-chunks,streams-chunks-v2")."""
    return sorted(await client.indices.get_alias(index=alias))


async def expand_identities(client: AsyncElasticsearch, alias: str, identifiers: set[str]) -> Identity:
    """Follow identity records: every identifier an identity record lists beside a known one, and
    the ways that record says the person is written."""
    known = set(identifiers)
    written: list[list[str]] = []
    await client.indices.refresh(index=alias)  # once: the rounds below write nothing
    for _ in range(MAX_HOPS):
        response = await client.search(index=alias, size=PAGE, query=naming("state", known), source_includes=["root"])
        found = set(known)
        written = []
        for hit in response["hits"]["hits"]:
            root = hit["_source"].get("root") or {}
            if root.get("identity"):
                found.update(root.get("subjects") or [])
                written.extend(root.get("mentions") or [])
        if found == known:
            break
        known = found
    return Identity(known, mention_patterns(known, written))
