"""Forgetting a person in Elasticsearch: find, delete what is about them, redact what mentions them, verify.

Two ways a chunk can hold a person:
- it is *about* them: the document's subjects (from the mappings) name one of their identifiers
  (their contact record, tickets they requested, notes about them), or a part of it was written by
  them (a comment, a wiki revision; the part's author is in the state record, not on its chunks).
  Those chunks are deleted: found through the state records (the chunk ids of every emptied part)
  and through the chunks' `subjects` field, in every index generation behind the alias;
- it *mentions* them in free text ("Please keep Priya Park (priya.park@...) in copy"): found with
  phrase queries for every mention pattern (email, full name, phone) over text, title and section,
  confirmed by the same redactor the write path uses, and rewritten with the mention replaced by
  ``[redacted]`` and the chunk **re-embedded** (a vector must not keep encoding the name). The
  document's state record takes the new chunk hashes, and the rest of the document stays searchable.

Identity records (a CRM contact) link identifiers (its email and contact id name one person) and hold
how the person is written (full name, phone): `expand_identities` collects both.

This Elasticsearch has no `_delete_by_query`: chunks are found by search and deleted by id, until a
search finds none. Deleted documents linger in Lucene segments until merged away: `purge`
force-merges with `only_expunge_deletes`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from streams.elastic.hybrid_index import fuse, knn_query, retriever_bodies
from streams.errors import IndexingError
from streams.pipeline.mentions import MentionPattern, Redactor
from streams.pipeline.plan_batch import state_id
from streams.pipeline.update_document_state import DocumentState, forget_in_state
from streams.records import text_hash

log = logging.getLogger(__name__)

PAGE = 1000
MAX_ROUNDS = 50
PROBE_SIZE = 100
HYBRID_K = PROBE_SIZE // 5  # documents a hybrid probe returns, each with up to 3 chunks
MENTION_FIELDS = ("text", "title", "section")
_HIGHLIGHT_TAG = re.compile(r"</?em>")

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
BeforeWrite = Callable[["ForgetOutcome"], Awaitable[None]]  # saves what a step noted before it writes
Key = tuple[str, str]  # (index, source)


def identifier(kind: str, subject: str) -> str:
    value = subject.strip()
    if kind == "email":
        value = value.lower()
    return f"{kind}:{value}"


@dataclass
class Identity:
    """Everything a request forgets: identifiers (subjects) and how the person is written (patterns)."""

    identifiers: set[str]
    patterns: set[MentionPattern] = field(default_factory=set)


def mention_patterns(identifiers: set[str], written: Sequence[Sequence[str]] = ()) -> set[MentionPattern]:
    """Email identifiers are written as themselves; identity records add the full name and phone."""
    patterns = {MentionPattern("email", name.split(":", 1)[1]) for name in identifiers if name.startswith("email:")}
    for kind, value in written:
        if kind in {"email", "name", "phone"} and value:
            patterns.add(MentionPattern(kind, value))  # type: ignore[arg-type]
    return {pattern for pattern in patterns if pattern.usable()}


async def indices(client: AsyncElasticsearch, alias: str) -> list[str]:
    """The concrete indices of an alias or an index expression ("streams-chunks,streams-chunks-v2")."""
    return sorted(await client.indices.get_alias(index=alias))


async def expand_identities(client: AsyncElasticsearch, alias: str, identifiers: set[str]) -> Identity:
    """Follow identity records: every identifier an identity record lists beside a known one, and
    the ways that record says the person is written."""
    known = set(identifiers)
    written: list[list[str]] = []
    await client.indices.refresh(index=alias)  # once: the rounds below write nothing
    for _ in range(5):
        response = await client.search(
            index=alias,
            size=PAGE,
            query={"bool": {"filter": [{"term": {"kind": "state"}}, {"terms": {"subjects": sorted(known)}}]}},
            source_includes=["root"],
        )
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


class Phases:
    """Wall seconds one request spends in each phase: where the time to unsearchable goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.3f}s" for name, seconds in self.seconds.items())


@dataclass
class ForgetOutcome:
    identifiers: list[str]
    removed: dict[Key, set[str]] = field(default_factory=dict)  # chunk ids deleted
    removed_documents: dict[Key, set[str]] = field(default_factory=dict)
    redacted: dict[Key, set[str]] = field(default_factory=dict)  # chunk ids rewritten without the mention
    redacted_documents: dict[Key, set[str]] = field(default_factory=dict)
    state_records: int = 0

    def note_removed(self, key: Key, chunk: str, document_id: str) -> None:
        self.removed.setdefault(key, set()).add(chunk)
        self.removed_documents.setdefault(key, set()).add(document_id)

    def note_redacted(self, key: Key, chunk: str, document_id: str) -> None:
        self.redacted.setdefault(key, set()).add(chunk)
        self.redacted_documents.setdefault(key, set()).add(document_id)


async def forget(
    client: AsyncElasticsearch,
    alias: str,
    identity: Identity,
    redactor: Redactor,
    embed: Embed,
    phases: Phases | None = None,
    outcome: ForgetOutcome | None = None,
    before_write: BeforeWrite | None = None,
) -> ForgetOutcome:
    """Delete what is about the person, then redact what mentions them.

    `outcome` collects what was removed and redacted: the deletion lane passes one per request, kept
    over its attempts, so that a receipt after a failed attempt still lists what that attempt did
    (the next attempt finds it gone and would otherwise certify "nothing removed"). Each step notes
    what it is about to write in it and calls `before_write` (which saves it, forget_progress.py)
    before writing: a worker killed midway leaves the note for the next one.

    The writes are not refreshed one by one: `verify_forgotten` refreshes once after them all and
    searches again, so anything a round here left behind makes the request fail and be retried.
    A step searches again (after a refresh) only when its page was full or a write conflicted.
    """
    phases = phases or Phases()
    if outcome is None:
        outcome = ForgetOutcome(sorted(identity.identifiers))
    else:
        outcome.identifiers = sorted(set(outcome.identifiers) | identity.identifiers)
    saved = before_write or _nothing
    with phases.timed("refresh"):  # what the indexer wrote before the gate, searchable now
        await client.indices.refresh(index=alias)
    with phases.timed("scrub"):
        await _scrub_states(client, alias, identity.identifiers, outcome, saved)
    with phases.timed("delete"):
        await _delete_named_chunks(client, alias, identity.identifiers, outcome, saved)
    if identity.patterns:
        with phases.timed("redact"):
            await _redact_mentions(client, alias, identity.patterns, redactor, embed, outcome, saved)
    return outcome


async def _nothing(outcome: ForgetOutcome) -> None:
    return None


async def _scrub_states(
    client: AsyncElasticsearch, alias: str, identifiers: set[str], outcome: ForgetOutcome, before_write: BeforeWrite
) -> None:
    """Empty every state record's parts that name the person, and delete those parts' chunks by id."""
    for round_number in range(MAX_ROUNDS):
        if round_number:
            await client.indices.refresh(index=alias)
        response = await client.search(
            index=alias,
            size=PAGE,
            query={"bool": {"filter": [{"term": {"kind": "state"}}, {"terms": {"subjects": sorted(identifiers)}}]}},
            seq_no_primary_term=True,
        )
        hits = response["hits"]["hits"]
        operations: list[dict[str, Any]] = []
        for hit in hits:
            before = DocumentState.from_json(hit["_source"])
            after = forget_in_state(before, identifiers)
            gone = sorted(set(before.chunk_ids()) - set(after.chunk_ids()))
            operations.extend({"delete": {"_index": hit["_index"], "_id": chunk}} for chunk in gone)
            for chunk in gone:
                outcome.note_removed((hit["_index"], before.source), chunk, before.document_id)
            # Written only if nobody changed the record since it was read; else scrubbed again.
            write = {
                "_index": hit["_index"],
                "_id": state_id(after.document_id),
                "if_seq_no": hit["_seq_no"],
                "if_primary_term": hit["_primary_term"],
            }
            operations.extend([{"index": write}, after.to_json()])
        conflicts = 0
        if operations:
            await before_write(outcome)
            conflicts = await _bulk(client, operations)
        outcome.state_records += len(hits) - conflicts
        if conflicts:
            log.info("%d state records changed while forgetting; scrubbing them again", conflicts)
        elif len(hits) < PAGE:
            return
    raise IndexingError(f"state records naming {sorted(identifiers)} kept appearing", stage="forget")


async def _delete_named_chunks(
    client: AsyncElasticsearch, alias: str, identifiers: set[str], outcome: ForgetOutcome, before_write: BeforeWrite
) -> None:
    """Chunks whose `subjects` field names the person (also those written before parts kept their
    authors in the state record only)."""
    for round_number in range(MAX_ROUNDS):
        if round_number:
            await client.indices.refresh(index=alias)
        response = await client.search(
            index=alias,
            size=PAGE,
            query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"terms": {"subjects": sorted(identifiers)}}]}},
            source_includes=["source", "document_id"],
        )
        hits = response["hits"]["hits"]
        for hit in hits:  # noted first: a write that fails midway leaves them noted for the next attempt
            source = hit["_source"]
            outcome.note_removed((hit["_index"], source.get("source", "")), hit["_id"], source.get("document_id", ""))
        if hits:
            await before_write(outcome)
            await _bulk(client, [{"delete": {"_index": hit["_index"], "_id": hit["_id"]}} for hit in hits])
        if len(hits) < PAGE:
            return
    raise IndexingError(f"chunks naming {sorted(identifiers)} kept appearing after {MAX_ROUNDS} rounds", stage="forget")


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
        queries.append(
            {
                "bool": {
                    "filter": [
                        {"prefix": {field_name: {"value": word, "case_insensitive": True}}} for word in form.split()
                    ]
                }
            }
        )
    elif pattern.kind == "phone":
        last10 = form[-10:]
        queries.append({"match_phrase": {field_name: {"query": f"{last10[:3]} {last10[3:6]} {last10[6:]}"}}})
        queries.append({"bool": {"filter": [{"term": {field_name: last10[6:]}}, {"term": {field_name: last10[3:6]}}]}})
        queries.append({"wildcard": {field_name: {"value": f"*{last10}"}}})
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


async def _redact_mentions(
    client: AsyncElasticsearch,
    alias: str,
    patterns: set[MentionPattern],
    redactor: Redactor,
    embed: Embed,
    outcome: ForgetOutcome,
    before_write: BeforeWrite,
) -> None:
    unconfirmed: set[str] = set()  # phrase matches the redactor does not see as a mention (left as they are)
    for round_number in range(MAX_ROUNDS):
        if round_number:
            await client.indices.refresh(index=alias)
        query = mention_query(patterns)
        # Chunks deleted above may still be searchable (no refresh since): rewriting one would bring it back.
        skip = unconfirmed | {chunk for chunks in outcome.removed.values() for chunk in chunks}
        if skip:
            query["bool"]["must_not"] = [{"ids": {"values": sorted(skip)}}]
        response = await client.search(index=alias, size=PAGE, query=query, source_excludes=["vector"])
        hits = response["hits"]["hits"]
        rewrites: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for hit in hits:
            source = hit["_source"]
            redacted = {name: redactor.redact(source.get(name) or "") for name in MENTION_FIELDS}
            if all(redacted[name] == (source.get(name) or "") for name in MENTION_FIELDS):
                unconfirmed.add(hit["_id"])
                continue
            rewrites.append((hit, {**source, **redacted, "text_hash": text_hash(redacted["text"])}))
        if rewrites:
            # Every rewritten chunk is embedded again from its redacted text.
            vectors = await embed([new["text"] for _, new in rewrites])
            operations: list[dict[str, Any]] = []
            for (hit, new), vector in zip(rewrites, vectors, strict=True):
                operations.append({"index": {"_index": hit["_index"], "_id": hit["_id"]}})
                operations.append({**new, "vector": vector})
                outcome.note_redacted((hit["_index"], new.get("source", "")), hit["_id"], new.get("document_id", ""))
            await before_write(outcome)
            await _bulk(client, operations)
            await _record_redactions(client, [(hit["_index"], new) for hit, new in rewrites], redactor)
        if len(hits) < PAGE:
            return
    raise IndexingError("mentions kept appearing after redaction", stage="forget")


async def _record_redactions(
    client: AsyncElasticsearch, rewritten: list[tuple[str, dict[str, Any]]], redactor: Redactor
) -> None:
    """Put the redacted chunks' hashes (and the redacted title) into their documents' state records,
    so the next change of the document diffs against what the index really holds."""
    by_document: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for index, chunk in rewritten:
        by_document.setdefault((index, chunk["document_id"]), []).append(chunk)
    await asyncio.gather(
        *(
            _record_document_redactions(client, index, document_id, chunks, redactor)
            for (index, document_id), chunks in by_document.items()
        )
    )


async def _record_document_redactions(
    client: AsyncElasticsearch, index: str, document_id: str, chunks: list[dict[str, Any]], redactor: Redactor
) -> None:
    for _ in range(MAX_ROUNDS):
        try:
            doc = await client.get(index=index, id=state_id(document_id))
        except NotFoundError:
            break
        state = DocumentState.from_json(doc["_source"])
        for chunk in chunks:
            part = state.parts.get(chunk["part_id"])
            number = int(chunk["chunk_number"])
            if part is not None and number < len(part.chunk_hashes):
                part.chunk_hashes[number] = chunk["text_hash"]
        if state.root is not None:
            state.root.title = redactor.redact(state.root.title)
        try:
            await client.index(
                index=index,
                id=state_id(document_id),
                document={**doc["_source"], **state.to_json()},
                if_seq_no=doc["_seq_no"],
                if_primary_term=doc["_primary_term"],
            )
            break
        except ConflictError:
            log.info("state of %s changed while redacting; recording it again", document_id)


async def _bulk(client: AsyncElasticsearch, operations: list[dict[str, Any]]) -> int:
    """Run `operations` unrefreshed; returns how many conditional writes conflicted (409). A delete of
    a chunk already gone (404) is what was wanted; any other failure raises."""
    response = await client.bulk(operations=operations)
    if not response.get("errors"):
        return 0
    conflicts = 0
    failures = []
    for item in response["items"]:
        for action, result in item.items():
            status = result.get("status", 500)
            if status == 409:
                conflicts += 1
            elif status >= 300 and not (action == "delete" and status == 404):
                failures.append(item)
    if failures:
        raise IndexingError(f"{len(failures)} forget writes failed, first: {failures[0]}", stage="forget")
    return conflicts


@dataclass
class Verification:
    """What searches still find after a request; every figure must be zero.

    - subject_field_hits: records whose `subjects` field names an identifier;
    - bm25_hits: chunks that the keyword probes for a pattern find (a phrase query and its most
      distinctive piece over text, title, section; no subject filter, every generation) and whose
      stored text or highlights still contain a pattern;
    - knn_hits: chunks among the nearest neighbours of each pattern's embedding that contain one;
    - hybrid_hits: results of a hybrid search for each pattern (as a user would type it) whose text,
      title or highlights contain one.
    """

    subject_field_hits: int
    bm25_hits: int
    knn_hits: int
    hybrid_hits: int

    @property
    def clean(self) -> bool:
        return not (self.subject_field_hits or self.bm25_hits or self.knn_hits or self.hybrid_hits)

    def merged(self, other: Verification) -> Verification:
        return Verification(
            self.subject_field_hits + other.subject_field_hits,
            self.bm25_hits + other.bm25_hits,
            self.knn_hits + other.knn_hits,
            self.hybrid_hits + other.hybrid_hits,
        )


def _plain(highlight: str) -> str:
    return _HIGHLIGHT_TAG.sub("", highlight)


def _mentions(redactor: Redactor, source: dict[str, Any], highlights: Sequence[str] = ()) -> bool:
    texts = [source.get(name) or "" for name in MENTION_FIELDS] + [_plain(h) for h in highlights]
    return any(redactor.mentions(text) for text in texts)


async def verify_forgotten(
    client: AsyncElasticsearch,
    alias: str,
    identity: Identity,
    redactor: Redactor,
    embed: Embed,
    vectors: Sequence[Sequence[float]] | None = None,
) -> Verification:
    """Search for the person the ways a user could, with no subject filter, and scan what comes back.

    One refresh makes every write of the request searchable, then every probe goes in one _msearch:
    the `subjects` count, and per pattern its phrase probe (highlights included), its nearest
    neighbours, and the two retrievers of the hybrid search users get (fused here exactly as
    `search` fuses them). `vectors` are the patterns' embeddings in `sorted(patterns, key=str)`
    order, when the caller computed them beforehand (while the deletions ran); else they are
    embedded here.
    """
    patterns = sorted(identity.patterns, key=str)
    if vectors is None:
        vectors = await embed([pattern.phrase() for pattern in patterns]) if patterns else []
    if len(vectors) != len(patterns):
        raise IndexingError(f"{len(vectors)} vectors for {len(patterns)} mention patterns", stage="forget")
    await client.indices.refresh(index=alias)
    names = {"terms": {"subjects": sorted(identity.identifiers)}}
    chunks_only = [{"term": {"kind": "chunk"}}]
    bodies: list[dict[str, Any]] = [{"size": 0, "track_total_hits": True, "query": {"bool": {"filter": [names]}}}]
    for pattern, vector in zip(patterns, vectors, strict=True):
        bodies.append(
            {
                "size": PROBE_SIZE,
                "query": mention_query({pattern}),
                "_source": {"excludes": ["vector"]},
                "highlight": {"fields": {name: {} for name in MENTION_FIELDS}},
            }
        )
        bodies.append(knn_query(vector, chunks_only, PROBE_SIZE))
        # The search users get (operator view: every group), typed as they would type it.
        bm25_body, knn_body = retriever_bodies(pattern.phrase(), vector, HYBRID_K, with_source=True)
        bodies.extend(body for body in (bm25_body, knn_body) if body is not None)
    searches: list[dict[str, Any]] = []
    for body in bodies:
        searches.extend([{"index": alias}, body])
    responses = (await client.msearch(searches=searches))["responses"]
    failed = [response["error"] for response in responses if "error" in response]
    if failed:
        raise IndexingError(f"{len(failed)} verification searches failed, first: {failed[0]}", stage="forget")
    field_hits = int(responses[0]["hits"]["total"]["value"])
    bm25: set[str] = set()
    knn: set[str] = set()
    hybrid: set[str] = set()
    probes = [response["hits"]["hits"] for response in responses[1:]]
    for number in range(len(patterns)):  # four probes per pattern, in the order they were added
        phrase, nearest, hybrid_bm25, hybrid_knn = probes[4 * number : 4 * number + 4]
        for hit in phrase:
            highlights = [text for texts in (hit.get("highlight") or {}).values() for text in texts]
            if _mentions(redactor, hit["_source"], highlights):
                bm25.add(hit["_id"])
        knn.update(hit["_id"] for hit in nearest if _mentions(redactor, hit["_source"]))
        # The fused ranking picks the chunks a user would see; their stored text (title, section, text)
        # is scanned. Highlights are fragments of that text, so the search's details pass adds nothing.
        stored = {hit["_id"]: hit["_source"] for hit in hybrid_bm25 + hybrid_knn}
        for document in fuse(hybrid_bm25, hybrid_knn, HYBRID_K):
            hybrid.update(chunk.chunk_id for chunk in document.chunks if _mentions(redactor, stored[chunk.chunk_id]))
    return Verification(field_hits, len(bm25), len(knn), len(hybrid))


async def purge(client: AsyncElasticsearch, alias: str) -> None:
    """Expunge deleted documents from every generation's segments (the physical purge)."""
    await client.indices.forcemerge(index=alias, only_expunge_deletes=True, wait_for_completion=True)
