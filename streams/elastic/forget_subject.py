"""Forgetting a subject in Elasticsearch: find, delete, verify, purge.

The subject is matched through the `subjects` field that the document mappings extract, never by
guessing in free text. Identity records (a CRM contact: its email and its contact id name one person)
link identifiers, so forgetting `email:alice@example.com` also forgets `contact_id:17`.

This Elasticsearch has no `_delete_by_query`: chunks are found by search and deleted by id, in
batches, over every index generation behind the alias, until a search finds none. State records that
name the subject are scrubbed (their version guards stay, the personal data goes). Deleted documents
linger in Lucene segments until merged away: `purge` force-merges with `only_expunge_deletes`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, ConflictError

from streams.elastic.hybrid_index import bm25_query, knn_query
from streams.elastic.write_documents import state_id
from streams.pipeline.update_document_state import DocumentState, forget_in_state

log = logging.getLogger(__name__)

PAGE = 1000
MAX_ROUNDS = 50


def identifier(kind: str, subject: str) -> str:
    value = subject.strip()
    if kind == "email":
        value = value.lower()
    return f"{kind}:{value}"


@dataclass
class ForgetOutcome:
    identifiers: list[str]
    removed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (index, source) -> chunks
    documents: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    state_records: int = 0


async def indices(client: AsyncElasticsearch, alias: str) -> list[str]:
    return sorted(await client.indices.get_alias(name=alias))


async def expand_identities(client: AsyncElasticsearch, alias: str, identifiers: set[str]) -> set[str]:
    """Follow identity records: every identifier that an identity record lists beside a known one."""
    known = set(identifiers)
    for _ in range(5):
        await client.indices.refresh(index=alias)
        response = await client.search(
            index=alias,
            size=PAGE,
            query={"bool": {"filter": [{"term": {"kind": "state"}}, {"terms": {"subjects": sorted(known)}}]}},
            source_includes=["root"],
        )
        found = set(known)
        for hit in response["hits"]["hits"]:
            root = hit["_source"].get("root") or {}
            if root.get("identity"):
                found.update(root.get("subjects") or [])
        if found == known:
            break
        known = found
    return known


async def forget(client: AsyncElasticsearch, alias: str, identifiers: set[str]) -> ForgetOutcome:
    """Scrub state records, then delete every chunk naming `identifiers`, until none is left."""
    outcome = ForgetOutcome(sorted(identifiers))
    outcome.state_records = await _scrub_states(client, alias, identifiers)
    for _ in range(MAX_ROUNDS):
        await client.indices.refresh(index=alias)
        response = await client.search(
            index=alias,
            size=PAGE,
            query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"terms": {"subjects": sorted(identifiers)}}]}},
            source_includes=["source", "document_id"],
        )
        hits = response["hits"]["hits"]
        if not hits:
            break
        operations: list[dict[str, Any]] = []
        for hit in hits:
            operations.append({"delete": {"_index": hit["_index"], "_id": hit["_id"]}})
            key = (hit["_index"], hit["_source"].get("source", ""))
            outcome.removed[key] += 1
            outcome.documents.setdefault(key, set()).add(hit["_source"].get("document_id", ""))
        await client.bulk(operations=operations, refresh=True)
    else:
        raise RuntimeError(f"chunks naming {sorted(identifiers)} kept appearing after {MAX_ROUNDS} rounds")
    return outcome


async def _scrub_states(client: AsyncElasticsearch, alias: str, identifiers: set[str]) -> int:
    scrubbed = 0
    for _ in range(MAX_ROUNDS):
        await client.indices.refresh(index=alias)
        response = await client.search(
            index=alias,
            size=PAGE,
            query={"bool": {"filter": [{"term": {"kind": "state"}}, {"terms": {"subjects": sorted(identifiers)}}]}},
            seq_no_primary_term=True,
        )
        hits = response["hits"]["hits"]
        if not hits:
            return scrubbed
        for hit in hits:
            state = forget_in_state(DocumentState.from_json(hit["_source"]), identifiers)
            try:
                await client.index(
                    index=hit["_index"],
                    id=state_id(state.document_id),
                    document=state.to_json(),
                    if_seq_no=hit["_seq_no"],
                    if_primary_term=hit["_primary_term"],
                )
                scrubbed += 1
            except ConflictError:
                log.info("state of %s changed while forgetting; scrubbing it again", state.document_id)
    raise RuntimeError(f"state records naming {sorted(identifiers)} kept appearing")


@dataclass
class Verification:
    subject_field_hits: int
    bm25_hits: int
    knn_hits: int
    hybrid_hits: int

    @property
    def clean(self) -> bool:
        return not (self.subject_field_hits or self.bm25_hits or self.knn_hits or self.hybrid_hits)


async def verify_forgotten(
    client: AsyncElasticsearch, alias: str, identifiers: set[str], subject: str, vector: Sequence[float]
) -> Verification:
    """Search for the subject the ways a user could (BM25, kNN, both) and count chunks that name it."""
    await client.indices.refresh(index=alias)
    names = {"terms": {"subjects": sorted(identifiers)}}
    field_hits = await client.count(index=alias, query={"bool": {"filter": [names]}})
    filters: list[dict[str, Any]] = [{"term": {"kind": "chunk"}}, names]
    bm25 = await client.search(index=alias, **bm25_query(subject, filters, 50))
    knn = await client.search(index=alias, **knn_query(vector, filters, 50))
    bm25_ids = {hit["_id"] for hit in bm25["hits"]["hits"]}
    knn_ids = {hit["_id"] for hit in knn["hits"]["hits"]}
    return Verification(int(field_hits["count"]), len(bm25_ids), len(knn_ids), len(bm25_ids | knn_ids))


async def purge(client: AsyncElasticsearch, alias: str) -> None:
    """Expunge deleted documents from every generation's segments (the physical purge)."""
    await client.indices.forcemerge(index=alias, only_expunge_deletes=True, wait_for_completion=True)
