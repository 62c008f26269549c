"""What the agents share inside one worker process: clients, the model, the ledger, the freshness window.

Built once, on the worker's event loop, the first time an agent asks for it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.agents.suppression import SuppressionLedger
from streams.agents.write_changes import ChangeWriter
from streams.clients import async_elasticsearch_client, elasticsearch_client
from streams.elastic.document_store import DocumentStore
from streams.elastic.hybrid_index import ensure_index, generation_of
from streams.elastic.worker_registry import ensure_registry
from streams.embedding.embedder import Embedder
from streams.observability.freshness import FreshnessWindow
from streams.pipeline.chunk_document import chunk_text, chunker_version
from streams.records import ChunkText, TextFormat
from streams.settings import Settings

log = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    return Embedder(settings.model_name, settings.model_path, settings.embedding_device, settings.embed_batch_size)


def chunk_max_tokens(settings: Settings, embedder: Embedder) -> int:
    """Chunks bounded by the model's window (its max_seq_length less [CLS] and [SEP])."""
    return min(settings.chunk_max_tokens, embedder.max_tokens - 2)


def provenance(settings: Settings, embedder: Embedder, index: str) -> dict[str, Any]:
    """What every chunk this worker writes to `index` says made it."""
    return {
        "generation": generation_of(index),
        "model": settings.model_name,
        "chunker": chunker_version(chunk_max_tokens(settings, embedder), settings.chunk_overlap_tokens),
    }


def build_chunker(settings: Settings, embedder: Embedder):  # type: ignore[no-untyped-def]
    max_tokens = chunk_max_tokens(settings, embedder)

    def chunker(text: str, text_format: TextFormat) -> list[ChunkText]:
        return chunk_text(
            text,
            text_format,
            max_tokens=max_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
            count_tokens=embedder.count_tokens,
        )

    return chunker


@dataclass
class Runtime:
    settings: Settings
    es: AsyncElasticsearch
    index: str
    embedder: Embedder
    ledger: SuppressionLedger
    writer: ChangeWriter
    freshness: FreshnessWindow


_runtime: Runtime | None = None
_lock = asyncio.Lock()


async def get_runtime(settings: Settings) -> Runtime:
    global _runtime
    async with _lock:
        if _runtime is None:
            _runtime = await asyncio.get_running_loop().run_in_executor(None, partial(_build, settings))
        return _runtime


def _build(settings: Settings) -> Runtime:
    logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
    embedder = build_embedder(settings)
    dims = embedder.dimensions  # loads the model now, not on the first event
    with elasticsearch_client(settings) as client:
        index = ensure_index(client, settings.index_alias, dims, settings.index_refresh_interval)
        ensure_registry(client, settings.workers_index)
    ledger = SuppressionLedger.load(settings)
    es = async_elasticsearch_client(settings)
    store = DocumentStore(es, index, settings.index_write_refresh)
    made_by = provenance(settings, embedder, index)
    writer = ChangeWriter(store, embedder, build_chunker(settings, embedder), ledger, made_by)
    log.info("worker ready: index %s (%d dims, %s), %d forgotten identifiers", index, dims, made_by, len(ledger))
    return Runtime(settings, es, index, embedder, ledger, writer, FreshnessWindow(settings.sources))
