"""Verify a request: search for the person every way a user could, and scan what comes back.

Nothing may be found: a hit in any probe fails the attempt, which is then retried (a write the erase
left behind is found and erased again), never certified.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.elastic.hybrid_index import fuse, knn_query, retriever_bodies
from streams.errors import IndexingError
from streams.forget.erase import Embed
from streams.forget.expand import Identity
from streams.forget.queries import MENTION_FIELDS, mention_query
from streams.pipeline.mentions import Redactor

PROBE_SIZE = 100
HYBRID_K = PROBE_SIZE // 5  # documents a hybrid probe returns, each with up to 3 chunks
_HIGHLIGHT_TAG = re.compile(r"</?em>")


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
    `search_page` fuses them). `vectors` are the patterns' embeddings in `sorted(patterns, key=str)`
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
