"""The index: its mapping and its hybrid query, in one module so that they cannot drift apart.

One index holds two kinds of records, told apart by `kind`:
- `chunk`: a piece of a document's text with its embedding and the document's metadata;
- `state`: one per document, the worker's memory of which source version of each row it applied
  (see pipeline/update_document_state.py). State records have no vector and never match a search.

The index is versioned (`<alias>-v1`, `<alias>-v2`, ...) behind an alias; writes go to the alias's
write index, searches and forget requests cover every generation behind the alias.
Elasticsearch's RRF needs a paid licence, so BM25 and kNN run as two queries and their ranks are
fused here with reciprocal rank fusion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError, Elasticsearch

from streams.elastic.generations import index_name, serving_index
from streams.errors import IndexingError

log = logging.getLogger(__name__)

RRF_K = 60  # the constant from the RRF paper (Cormack et al., 2009)


# Provenance: which generation, model and chunker made a chunk. Added to indices created before these
# fields existed by put_mapping (the mapping is strict: an unknown field would be refused).
PROVENANCE_FIELDS: dict[str, Any] = {
    "generation": {"type": "integer"},
    "model": {"type": "keyword"},
    "chunker": {"type": "keyword"},
}

# What /search filters on: the document's mapped metadata (connectors/*.mapping.yaml, `metadata:`) as
# keywords, one flattened field whatever columns a mapping names (a new column needs no mapping change),
# and its creation time as a date for ranges. `metadata` itself stays unindexed: it is what hits return.
# Added to older indices by put_mapping like the provenance; their chunks get the fields when rewritten
# (or all at once by a new generation, `streams migrate`).
FILTER_FIELDS: dict[str, Any] = {
    "attributes": {"type": "flattened"},
    "created_at": {"type": "date", "ignore_malformed": True},
}


# Merging segments rebuilds their HNSW graphs, the most expensive thing this index does. The worker
# refreshes after every batch (many small segments) and replaces chunks (deleted documents), so the
# default policy merges all the time. Tolerating more segments per tier and more deleted documents
# halved Elasticsearch's CPU under steady edits (streams bench, steady: 52 -> 26 CPU-seconds a
# minute on two cores); `streams forget` still expunges a forgotten subject's deleted chunks.
MERGE_POLICY = {
    "merge.policy.segments_per_tier": 30,
    "merge.policy.floor_segment": "20mb",
    "merge.policy.deletes_pct_allowed": 50,
}


# How title, section and text are analysed for BM25. `english` (Lucene's EnglishAnalyzer: stop words,
# possessives, Porter stemming) measured better than `standard` on the project's golden set (README,
# "Retrieval quality"). The official image has it built in; the local stack's minimal distribution gets
# it from the streams-analysis-english plugin (streams/stack/analysis_plugin.py). An existing index keeps
# the analysis it was created with (a mapping's analyzer cannot change): only a new index uses this.
ANALYSIS = "english"
ANALYSES = ("standard", "english")

# How the HNSW graph stores vectors: `hnsw` keeps float32, `int8_hnsw` searches int8 copies (a quarter
# of the memory) and keeps the floats on disk. See README, "Retrieval quality", for what each measured.
VECTOR_INDEX = "hnsw"
VECTOR_INDEXES = ("hnsw", "int8_hnsw")


def index_body(
    dims: int,
    refresh_interval: str = "1s",
    gc_deletes: str | None = None,
    analysis: str = ANALYSIS,
    vectors: str = VECTOR_INDEX,
) -> dict[str, Any]:
    if analysis not in ANALYSES:
        raise ValueError(f"unknown analysis {analysis!r}: one of {', '.join(ANALYSES)}")
    if vectors not in VECTOR_INDEXES:
        raise ValueError(f"unknown vector index {vectors!r}: one of {', '.join(VECTOR_INDEXES)}")
    text = {"type": "text", "analyzer": analysis}
    settings: dict[str, Any] = {
        "number_of_shards": 1,  # one shard: bulk items for a document apply in order
        "number_of_replicas": 0,
        "refresh_interval": refresh_interval,
        **MERGE_POLICY,
    }
    if gc_deletes:
        settings["gc_deletes"] = gc_deletes
    return {
        "settings": {"index": settings},
        "mappings": {
            "_meta": {"analysis": analysis},
            "dynamic": "strict",
            "properties": {
                "kind": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "part_id": {"type": "keyword"},
                "source": {"type": "keyword"},
                "table": {"type": "keyword"},
                "chunk_number": {"type": "integer"},
                "title": text,
                "section": text,
                "text": text,
                "text_hash": {"type": "keyword"},
                "vector": {
                    "type": "dense_vector",
                    "dims": dims,
                    "index": True,
                    "similarity": "cosine",
                    "index_options": {"type": vectors, "m": 16, "ef_construction": 100},
                },
                "version": {"type": "long"},
                "commit_ts": {"type": "date"},
                "indexed_at": {"type": "date"},
                "subjects": {"type": "keyword"},
                "groups": {"type": "keyword"},
                "visible": {"type": "boolean"},
                "link": {"type": "keyword", "index": False},
                "metadata": {"type": "object", "enabled": False},
                # state records only:
                "root": {"type": "object", "enabled": False},
                "parts": {"type": "object", "enabled": False},
                **PROVENANCE_FIELDS,
                **FILTER_FIELDS,
            },
        },
    }


def ensure_index(
    client: Elasticsearch,
    alias: str,
    dims: int,
    refresh_interval: str = "1s",
    gc_deletes: str | None = None,
    meta: dict[str, Any] | None = None,
) -> str:
    """The serving generation behind `alias`, created (as generation 1) when the alias does not exist.

    Returns the concrete write index. `meta` (how chunks are made: elastic/generations.py) is stored in
    a new index's mapping, and in an existing index's that has none yet. A mismatch between the model
    and an existing index is an error that names both numbers: silently mixing vector spaces would
    corrupt kNN search.
    """
    name = serving_index(client, alias) or index_name(alias)
    created = False
    if not client.indices.exists(index=name):
        body = index_body(dims, refresh_interval, gc_deletes)
        if meta:
            body["mappings"]["_meta"].update(meta)  # beside the analysis index_body records
        try:
            client.indices.create(index=name, **body)
            created = True
        except BadRequestError as exc:
            if "analyzer" in str(exc) and ANALYSIS in str(exc):
                raise IndexingError(
                    f"Elasticsearch has no `{ANALYSIS}` analyzer for {name}: the local stack installs it as a "
                    f"plugin when Elasticsearch starts (`streams stack down` then `streams stack up`)"
                ) from exc
            if exc.error != "resource_already_exists_exception":  # several workers starting together
                raise
    if not created:  # an index created by an earlier release: the merge policy is a dynamic setting
        client.indices.put_settings(index=name, settings={"index": MERGE_POLICY})
        ensure_filter_fields(client, name)
    mapping = client.indices.get_mapping(index=name)[name]["mappings"]
    existing_meta = mapping.get("_meta") or {}
    if meta and any(key not in existing_meta for key in meta):
        # put_mapping replaces _meta whole: keep what is there (the analysis) beside what is added.
        client.indices.put_mapping(index=name, meta={**meta, **existing_meta})
    analysis = index_analysis(mapping)
    if analysis != ANALYSIS:
        log.warning(
            "index %s analyses text with `%s`, new indices with `%s`: it keeps its analysis until a new index "
            "generation replaces it (`streams migrate`)",
            name,
            analysis,
            ANALYSIS,
        )
    existing = mapping["properties"]["vector"]["dims"]
    if existing != dims:
        raise IndexingError(
            f"index {name} stores {existing}-dimensional vectors but the model makes {dims}: "
            f"use a new index generation or the model the index was built with"
        )
    if not client.indices.exists_alias(name=alias, index=name):
        client.indices.put_alias(index=name, name=alias, is_write_index=True)
    return name


def ensure_filter_fields(client: Elasticsearch, index: str) -> None:
    """Every field a chunk carries, in an index created by an earlier release (the mapping is strict:
    without them every chunk written there would be refused)."""
    client.indices.put_mapping(index=index, properties={**PROVENANCE_FIELDS, **FILTER_FIELDS})


def index_analysis(mapping: dict[str, Any]) -> str:
    """The analysis an index was created with (indices from before `_meta` used `standard`)."""
    return str(mapping.get("_meta", {}).get("analysis", "standard"))


@dataclass(frozen=True)
class MetadataFilter:
    """What /search narrows by besides sources and groups: exact values of mapped metadata fields (a
    field matches any of its values, every field named must match) and a creation-time range (ISO 8601,
    both ends included). Empty, it narrows nothing."""

    values: Mapping[str, Sequence[str]] = field(default_factory=dict)
    created_from: str | None = None
    created_to: str | None = None

    def clauses(self) -> list[dict[str, Any]]:
        clauses: list[dict[str, Any]] = [
            {"terms": {f"attributes.{name}": list(values)}} for name, values in sorted(self.values.items())
        ]
        bounds = {op: value for op, value in (("gte", self.created_from), ("lte", self.created_to)) if value}
        if bounds:
            clauses.append({"range": {"created_at": bounds}})
        return clauses


NO_METADATA_FILTER = MetadataFilter()


def chunk_filter(
    sources: Sequence[str] | None,
    groups: Sequence[str] | None,
    metadata: MetadataFilter = NO_METADATA_FILTER,
) -> list[dict[str, Any]]:
    """Only visible chunks, of the chosen sources, that the caller's groups may see, and whose document's
    metadata passes `metadata`.

    `groups=None` is the operator's unrestricted view; an empty list sees nothing.
    """
    filters: list[dict[str, Any]] = [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}]
    if sources:
        filters.append({"terms": {"source": list(sources)}})
    if groups is not None:
        filters.append({"terms": {"groups": list(groups)}})
    filters.extend(metadata.clauses())
    return filters


# Equal weights: boosting the title (title^2) measured worse on the golden set (BM25 nDCG@10 0.855 -> 0.889
# without the boost, hybrid 0.904 -> 0.918; English analysis, README "Retrieval quality").
BM25_FIELDS = ("text", "title", "section")
HIGHLIGHT = {"fields": {"text": {"fragment_size": 160, "number_of_fragments": 2}}}


# The retrievers return only ids and each chunk's document: fusion needs nothing more, and the text,
# title and highlights of the few chunks returned come in one request after it (`_details`). Reading
# `_source` for every candidate made Elasticsearch parse each one's stored vector too.
RETRIEVED_FIELDS: dict[str, Any] = {"_source": False, "docvalue_fields": ["document_id"]}
DETAIL_FIELDS = [
    "document_id",
    *("source", "title", "section", "text", "link", "metadata"),
    *("generation", "model", "chunker"),
]


def bm25_query(
    query: str,
    filters: list[dict[str, Any]],
    size: int,
    *,
    highlight: bool = True,
    fields: Sequence[str] = BM25_FIELDS,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"must": {"multi_match": {"query": query, "fields": list(fields)}}, "filter": filters}},
        "_source": {"excludes": ["vector"]},
    }
    if highlight:
        body["highlight"] = HIGHLIGHT
    return body


def knn_query(
    vector: Sequence[float], filters: list[dict[str, Any]], size: int, num_candidates: int | None = None
) -> dict[str, Any]:
    return {
        "size": size,
        "knn": {
            "field": "vector",
            "query_vector": list(vector),
            "k": size,
            # Elasticsearch refuses fewer candidates than k
            "num_candidates": max(num_candidates, size) if num_candidates else max(100, size * 4),
            "filter": filters,
        },
        "_source": {"excludes": ["vector"]},
    }


def details_query(
    query: str, chunk_ids: Sequence[str], filters: list[dict[str, Any]], fields: Sequence[str] = BM25_FIELDS
) -> dict[str, Any]:
    """The returned chunks' text and metadata, with the query's words highlighted where they occur
    (a kNN-only chunk that does not contain them comes back without highlights). The search's filters
    apply again: a chunk forgotten or hidden since the retrievers ran must not be shown."""
    return {
        "size": len(chunk_ids),
        "query": {
            "bool": {
                "filter": [{"ids": {"values": list(chunk_ids)}}, *filters],
                "should": {"multi_match": {"query": query, "fields": list(fields)}},
            }
        },
        "_source": {"includes": DETAIL_FIELDS},
        "highlight": HIGHLIGHT,
    }


def _document_id(hit: dict[str, Any]) -> str:
    """A hit's document: from its doc-values field (the retrievers') or its `_source`."""
    values = hit.get("fields", {}).get("document_id")
    return str(values[0]) if values else str(hit["_source"]["document_id"])


@dataclass
class ChunkHit:
    chunk_id: str
    text: str
    section: str
    highlights: list[str]
    bm25_rank: int | None = None
    knn_rank: int | None = None
    score: float = 0.0
    # Provenance: the concrete index that served the hit, and what made the chunk (None for chunks
    # written before provenance existed).
    index: str = ""
    generation: int | None = None
    model: str | None = None
    chunker: str | None = None


@dataclass
class DocumentHit:
    document_id: str
    source: str
    title: str
    link: str
    score: float
    chunks: list[ChunkHit] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # the mapped metadata columns of its root row

    def to_json(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "source": self.source,
            "title": self.title,
            "link": self.link,
            "score": round(self.score, 6),
            "metadata": self.metadata,
            "chunks": [
                {
                    "chunk_id": chunk.chunk_id,
                    "section": chunk.section,
                    "highlights": chunk.highlights,
                    "text": chunk.text,
                    "bm25_rank": chunk.bm25_rank,
                    "knn_rank": chunk.knn_rank,
                    "provenance": {
                        "index": chunk.index,
                        "generation": chunk.generation,
                        "model": chunk.model,
                        "chunker": chunk.chunker,
                    },
                }
                for chunk in self.chunks
            ],
        }


@dataclass(frozen=True)
class SearchTuning:
    """The knobs of the hybrid query, in one place so that `streams eval` can measure a change to any
    of them before it becomes the default (every default here was kept because it measured better)."""

    rrf_k: int = RRF_K
    bm25_weight: float = 1.0
    knn_weight: float = 1.0
    # Each retriever fetches k * chunks_per_k chunks (a document has several). 2 measured as good as 5 on
    # the golden set (hybrid nDCG@10 0.907 vs 0.904, recall@100 equal) for 40 % of the work at k=100.
    chunks_per_k: int = 2
    num_candidates: int | None = None  # HNSW candidates per shard; None: max(100, 4 * chunks fetched)
    bm25_fields: tuple[str, ...] = BM25_FIELDS


MIN_CHUNKS = 50  # what k=10 fetched before chunks_per_k went from 5 to 2 (eval measures at k=100)
DEFAULT_TUNING = SearchTuning()
MODES = ("hybrid", "bm25", "knn")  # every ranking the search can return; `streams eval` measures each


def fuse(
    bm25_hits: list[dict[str, Any]],
    knn_hits: list[dict[str, Any]],
    k: int,
    chunks_per_document: int = 3,
    tuning: SearchTuning = DEFAULT_TUNING,
) -> list[DocumentHit]:
    """Reciprocal rank fusion over chunks, then grouped by document (a document scores its best chunk).

    With one of the two lists empty this is that retriever's own ranking, grouped by document, which is
    how BM25 alone and kNN alone are served and measured.
    """
    chunks: dict[str, ChunkHit] = {}
    owners: dict[str, str] = {}
    weights = {"bm25": tuning.bm25_weight, "knn": tuning.knn_weight}
    for ranking, hits in (("bm25", bm25_hits), ("knn", knn_hits)):
        for rank, hit in enumerate(hits, start=1):
            owners[hit["_id"]] = _document_id(hit)
            chunk = chunks.setdefault(hit["_id"], ChunkHit(hit["_id"], "", "", [], index=hit.get("_index", "")))
            chunk.score += weights[ranking] / (tuning.rrf_k + rank)
            if ranking == "bm25":
                chunk.bm25_rank = rank
            else:
                chunk.knn_rank = rank
    documents: dict[str, DocumentHit] = {}
    for chunk in sorted(chunks.values(), key=lambda c: c.score, reverse=True):
        document_id = owners[chunk.chunk_id]
        document = documents.get(document_id)
        if document is None:
            document = documents[document_id] = DocumentHit(document_id, "", "", "", chunk.score)
        if len(document.chunks) < chunks_per_document:
            document.chunks.append(chunk)
    return sorted(documents.values(), key=lambda d: d.score, reverse=True)[:k]


def retriever_bodies(
    query: str,
    vector: Sequence[float] | None,
    k: int,
    filters: list[dict[str, Any]] | None = None,
    *,
    mode: str = "hybrid",
    tuning: SearchTuning = DEFAULT_TUNING,
    with_source: bool = False,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The BM25 and kNN request bodies `search_page` sends for `mode` (None for a retriever it does not use);
    `fuse` of their hits is the ranking. The search asks for ids only (the returned chunks' details
    come after fusion); the forget verification, which must search exactly as users do and then
    scan what it found, asks `with_source` for the stored text (the vector left out). `filters`:
    `chunk_filter`'s (every visible chunk when None)."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}: one of {', '.join(MODES)}")
    filters = chunk_filter(None, None) if filters is None else filters
    size = max(k * tuning.chunks_per_k, MIN_CHUNKS)
    returned = {"_source": {"excludes": ["vector"]}} if with_source else RETRIEVED_FIELDS
    bm25_body = knn_body = None
    if mode in ("hybrid", "bm25"):
        bm25_body = {**bm25_query(query, filters, size, highlight=False, fields=tuning.bm25_fields), **returned}
    if mode in ("hybrid", "knn"):
        if vector is None:
            raise ValueError(f"search mode {mode} needs the query's vector")
        knn_body = {**knn_query(vector, filters, size, tuning.num_candidates), **returned}
    return bm25_body, knn_body


# How far /search pages: offset + k documents are fused from (offset + k) * chunks_per_k chunks per
# retriever, within Elasticsearch's default result window and kNN candidate limit (10,000).
MAX_WINDOW = 1000
# The total is a cardinality count: exact in practice below this many documents, approximate above.
TOTAL_PRECISION = 10_000


@dataclass(frozen=True)
class SearchPage:
    hits: list[DocumentHit]
    offset: int
    # Documents that pass the filters and contain the query's words (BM25). The hybrid ranking can
    # add documents similar in meaning that do not contain them, so it may return more than this.
    total: int | None = None
    total_relation: str = "eq"  # "gte": more documents than TOTAL_PRECISION match


@dataclass(frozen=True)
class Retrieved:
    """What the two retrievers returned for one search, before fusion ([] for a retriever not asked)."""

    bm25_hits: list[dict[str, Any]]
    knn_hits: list[dict[str, Any]]
    total: int | None = None  # with_total's count of documents that contain the query's words
    # chunk_filter's: the details request applies them again
    filters: list[dict[str, Any]] = field(default_factory=list)


async def retrieve(
    client: AsyncElasticsearch,
    alias: str,
    query: str,
    vector: Sequence[float] | None,
    k: int = 10,
    sources: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    *,
    metadata: MetadataFilter = NO_METADATA_FILTER,
    with_total: bool = False,
    mode: str = "hybrid",
    tuning: SearchTuning = DEFAULT_TUNING,
) -> Retrieved:
    """The hits `search_page` fuses for its first `k` documents, asked with the same filters and bodies.
    `streams eval tune` fuses them under many settings of rrf_k and the weights, which the retrievers
    do not see, without asking Elasticsearch again."""
    filters = chunk_filter(sources, groups, metadata)
    bm25_body, knn_body = retriever_bodies(query, vector, k, filters, mode=mode, tuning=tuning)
    if with_total:
        bm25_body = bm25_body or {**bm25_query(query, filters, 0, highlight=False), **RETRIEVED_FIELDS}
        bm25_body["aggs"] = {
            "documents": {"cardinality": {"field": "document_id", "precision_threshold": TOTAL_PRECISION}}
        }

    async def ask(body: dict[str, Any] | None) -> dict[str, Any]:
        return {"hits": {"hits": []}} if body is None else dict(await client.search(index=alias, **body))

    # The two retrievers are independent: asked together, a query waits for the slower, not for both.
    bm25, knn = await asyncio.gather(ask(bm25_body), ask(knn_body))
    total = int(bm25["aggregations"]["documents"]["value"]) if with_total else None
    bm25_hits = [] if mode == "knn" else list(bm25["hits"]["hits"])  # kNN alone asked BM25 for the total only
    return Retrieved(bm25_hits, list(knn["hits"]["hits"]), total, filters)


async def search_page(
    client: AsyncElasticsearch,
    alias: str,
    query: str,
    vector: Sequence[float] | None,
    k: int = 10,
    sources: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    *,
    metadata: MetadataFilter = NO_METADATA_FILTER,
    offset: int = 0,
    with_total: bool = False,
    mode: str = "hybrid",
    tuning: SearchTuning = DEFAULT_TUNING,
    highlight: bool = True,
) -> SearchPage:
    """The search that /search, `streams search` and `streams eval` all run: `mode` picks hybrid,
    BM25 alone or kNN alone (`vector` may be None for BM25 alone); the page from the `offset`-th
    document of the fused ranking on (`offset + k <= MAX_WINDOW`), and with `with_total` the count of
    documents that contain the query's words.

    Only the chunks that are returned get their text, metadata and highlights, in one small request
    after fusion: highlighting every one of the k * 5 BM25 candidates cost more than the search
    itself at k=100. With `highlight=False` (what `streams eval` needs) that request is not made and
    the hits carry ids, ranks and scores only.
    """
    if offset < 0 or offset + k > MAX_WINDOW:
        raise ValueError(f"offset + k must be at most {MAX_WINDOW} (offset {offset}, k {k})")
    retrieved = await retrieve(
        client,
        alias,
        query,
        vector,
        offset + k,
        sources,
        groups,
        metadata=metadata,
        with_total=with_total,
        mode=mode,
        tuning=tuning,
    )
    documents = fuse(retrieved.bm25_hits, retrieved.knn_hits, offset + k, tuning=tuning)[offset:]
    if highlight:  # the retrievers' filters again: see details_query
        documents = await _details(client, alias, query, documents, retrieved.filters, tuning)
    total = retrieved.total
    return SearchPage(documents, offset, total, "gte" if (total or 0) >= TOTAL_PRECISION else "eq")


async def _details(
    client: AsyncElasticsearch,
    alias: str,
    query: str,
    documents: list[DocumentHit],
    filters: list[dict[str, Any]],
    tuning: SearchTuning,
) -> list[DocumentHit]:
    """The returned chunks with their text, section and highlights and their documents' metadata;
    a chunk that no longer matches the filters is dropped, and a document left with none."""
    returned = {chunk.chunk_id: (document, chunk) for document in documents for chunk in document.chunks}
    if not returned:
        return documents
    body = details_query(query, list(returned), filters, tuning.bm25_fields)
    response = await client.search(index=alias, **body)
    found = set()
    for hit in response["hits"]["hits"]:
        found.add(hit["_id"])
        document, chunk = returned[hit["_id"]]
        source = hit.get("_source", {})
        chunk.text, chunk.section = source.get("text", ""), source.get("section", "")
        chunk.highlights = hit.get("highlight", {}).get("text", [])
        chunk.index = hit.get("_index", chunk.index)
        chunk.generation, chunk.model = source.get("generation"), source.get("model")
        chunk.chunker = source.get("chunker")
        document.source, document.title, document.link = (
            source.get("source", ""),
            source.get("title", ""),
            source.get("link", ""),
        )
        document.metadata = dict(source.get("metadata") or {})
    for document in documents:
        document.chunks = [chunk for chunk in document.chunks if chunk.chunk_id in found]
    return [document for document in documents if document.chunks]
