"""What the agents share inside one worker process: clients, the model, the ledger, the freshness window.

Built once per worker by `build_runtime`, which the worker service (agents/service.py) runs in a
thread when it starts; the agents and pages wait for it there.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.agents.suppression import SuppressionLedger
from streams.agents.write_changes import ChangeWriter, GenerationsWriter
from streams.clients import async_elasticsearch_client, elasticsearch_client
from streams.elastic.document_store import DocumentStore
from streams.elastic.generations import (
    GenerationConfig,
    Migration,
    ensure_migrations_index,
    generation_of,
    read_config,
    read_migration,
    serving_index,
)
from streams.elastic.hybrid_index import ensure_filter_fields, ensure_index
from streams.elastic.worker_registry import ensure_registry
from streams.embedding.embedder import Embedder
from streams.errors import IndexingError
from streams.forget.progress import ensure_progress_index
from streams.observability.freshness import FreshnessWindow
from streams.pipeline.chunk_document import chunk_text, chunker_version
from streams.records import ChunkText, TextFormat
from streams.settings import Settings

log = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    return Embedder.from_settings(settings)  # the backend (auto, torch, onnx, ...) is STREAMS_EMBEDDING_BACKEND


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


def settings_config(settings: Settings) -> GenerationConfig:
    """How this worker's settings would build a new generation."""
    return GenerationConfig(
        settings.model_name, settings.model_path, settings.chunk_max_tokens, settings.chunk_overlap_tokens
    )


def generation_settings(settings: Settings, config: GenerationConfig) -> Settings:
    return settings.model_copy(
        update={
            "model_name": config.model_name,
            "model_path": config.model_path,
            "chunk_max_tokens": config.chunk_max_tokens,
            "chunk_overlap_tokens": config.chunk_overlap_tokens,
        }
    )


def embedder_for(settings: Settings, client: Any, index: str) -> Embedder:
    """The embedder that made `index`'s vectors (an alias: its serving generation's), so a query vector
    lives in the index's space after a switch to another model. An index that records no model (a
    scratch copy, an index from before generations) gets the settings' model."""
    concrete = serving_index(client, index) or index
    config = read_config(client, concrete) if client.indices.exists(index=concrete) else None
    return build_embedder(generation_settings(settings, config) if config else settings)


class Embedders:
    """One Embedder per model, shared by the generations that use it (a chunk-size migration loads no
    second model), and on demand a copy of it for the deletion lane (`urgent`) and one for the live
    lane (`live`), each with a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_model: dict[tuple[str, str | None], Embedder] = {}
        self._urgent: dict[tuple[str, str | None], Embedder] = {}
        self._live: dict[tuple[str, str | None], Embedder] = {}

    def get(self, config: GenerationConfig) -> Embedder:
        key = (config.model_name, config.model_path)
        if key not in self._by_model:
            self._by_model[key] = build_embedder(generation_settings(self.settings, config))
        return self._by_model[key]

    def urgent(self, embedder: Embedder) -> Embedder:
        """A second copy of `embedder`'s model with its own thread, for the deletion lane: a request's
        few texts (its patterns, the redacted chunks) must not queue behind a batch in another copy's
        thread (seconds on two cores). It costs the model's memory once more (~90 MB for MiniLM)."""
        return self._copy(self._urgent, embedder)

    def live(self, embedder: Embedder) -> Embedder:
        """A copy of `embedder`'s model with its own thread, for the live lane: a live batch never waits
        behind the backfill slices queued in the indexing copy's thread, and a deletion request never
        waits behind a live batch."""
        return self._copy(self._live, embedder)

    def _copy(self, copies: dict[tuple[str, str | None], Embedder], embedder: Embedder) -> Embedder:
        key = (embedder.model_name, embedder.model_path)
        if key not in copies:
            model = {"model_name": embedder.model_name, "model_path": embedder.model_path}
            copies[key] = build_embedder(self.settings.model_copy(update=model))
        return copies[key]


@dataclass
class Runtime:
    settings: Settings
    es: AsyncElasticsearch
    index: str
    embedder: Embedder
    ledger: SuppressionLedger
    writer: GenerationsWriter
    freshness: FreshnessWindow
    embedders: Embedders
    migration_version: int = 0

    def forget_groups(self) -> list[tuple[str, Embedder]]:
        """Where a deletion request must act, as (index expression, the deletion lane's copy of those
        indices' model): the alias, plus every generation a migration writes, grouped by model (a
        redacted chunk is re-embedded with the model of its own generation)."""
        groups: dict[tuple[str, str | None], tuple[list[str], Embedder]] = {}
        for index, writer in sorted(self.writer.writers.items()):
            model = (writer.embedder.model_name, writer.embedder.model_path)
            indices, _ = groups.setdefault(model, ([], writer.embedder))
            indices.append(index)
        serving = self.writer.writers[self.writer.serving].embedder
        serving_model = (serving.model_name, serving.model_path)
        result = []
        for model, (indices, embedder) in groups.items():
            names = [self.settings.index_alias, *indices] if model == serving_model else indices
            result.append((",".join(names), self.embedders.urgent(embedder)))
        return result

    def search_target(self) -> tuple[str, Embedder]:
        """The concrete index the alias serves, and the embedder of its model: a query is embedded with
        the model of the index it searches, through `streams migrate switch` to another model too.

        Known without a request per query: every migration step rewrites the migration record, the
        worker follows it (`sync_generations`, every worker_heartbeat_s), and `streams migrate finish`
        drops a generation only once every worker has applied the step that stopped serving it."""
        serving = self.writer.serving
        return serving, self.writer.writers[serving].embedder

    async def sync_generations(self) -> bool:
        """Follow the migration record: rebuild the writers when it changed. Returns whether it did."""
        migration = await read_migration(self.es, self.settings.migrations_index, self.settings.index_alias)
        version = migration.version if migration else 0
        if version == self.migration_version:
            return False
        writers, serving = await asyncio.get_running_loop().run_in_executor(
            None, partial(_generation_writers, self.settings, self.es, self.ledger, self.embedders, migration)
        )
        await self.writer.replace(writers, serving)  # only reported once no batch writes the old set
        self.migration_version = version
        log.info("index generations written: %s (serving %s)", ", ".join(sorted(writers)), serving)
        return True


def _generation_writers(
    settings: Settings,
    es: AsyncElasticsearch,
    ledger: SuppressionLedger,
    embedders: Embedders,
    migration: Migration | None,
) -> tuple[dict[str, ChangeWriter], str]:
    with elasticsearch_client(settings) as client:
        serving = serving_index(client, settings.index_alias)
        if serving is None:
            raise IndexingError(f"the alias {settings.index_alias} points at no index")
        indices = migration.generations if migration else [serving]
        configs = {index: read_config(client, index) or settings_config(settings) for index in indices}
        for index in indices:  # a generation a migration created before the filter fields existed
            ensure_filter_fields(client, index)
    writers: dict[str, ChangeWriter] = {}
    for index, config in configs.items():
        embedder = embedders.get(config)
        same_model = [
            other
            for other, c in configs.items()
            if other != index and (c.model_name, c.model_path) == (config.model_name, config.model_path)
        ]
        store = DocumentStore(es, index, settings.index_write_refresh, reuse_from=same_model[0] if same_model else None)
        gen_settings = generation_settings(settings, config)
        writers[index] = ChangeWriter(
            store,
            embedder,
            build_chunker(gen_settings, embedder),
            ledger,
            provenance(gen_settings, embedder, index),
            live=embedders.live(embedder),
        )
    return writers, serving


def migration_record(settings: Settings) -> Migration | None:
    """The migration record (read_migration), for code that runs no event loop: `streams migrate`,
    and the runtime's build in its thread."""

    async def read() -> Migration | None:
        async with async_elasticsearch_client(settings) as es:
            return await read_migration(es, settings.migrations_index, settings.index_alias)

    return asyncio.run(read())


def build_runtime(settings: Settings) -> Runtime:
    """Blocking (it loads the model and reads the whole ledger): run it in a thread."""
    logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
    embedders = Embedders(settings)
    with elasticsearch_client(settings) as client:
        serving = serving_index(client, settings.index_alias)
        config = (read_config(client, serving) if serving else None) or settings_config(settings)
        if config != settings_config(settings):
            log.warning(
                "the index %s was built with %s; the settings say %s: the index wins (`streams migrate start`"
                " builds a new generation)",
                serving,
                config,
                settings_config(settings),
            )
        embedder = embedders.get(config)
        dims = embedder.dimensions  # loads the model now, not on the first event
        # The lanes' copies are loaded now too: a first deletion or live edit must not wait for a load.
        if {embedders.urgent(embedder).dimensions, embedders.live(embedder).dimensions} != {dims}:
            raise RuntimeError("loads of one model disagree on its dimensions")
        index = ensure_index(client, settings.index_alias, dims, settings.index_refresh_interval, meta=config.to_meta())
        ensure_registry(client, settings.workers_index)
        ensure_migrations_index(client, settings.migrations_index)
        ensure_progress_index(client, settings.forget_progress_index)
    migration = migration_record(settings)
    ledger = SuppressionLedger.load(settings)
    es = async_elasticsearch_client(settings)
    writers, serving = _generation_writers(settings, es, ledger, embedders, migration)
    writer = GenerationsWriter(writers, serving)
    made_by = {index: w.provenance for index, w in writers.items()}
    log.info(
        "worker ready: index %s (%d dims), writing %s, %d forgotten identifiers", index, dims, made_by, len(ledger)
    )
    return Runtime(
        settings,
        es,
        index,
        embedder,
        ledger,
        writer,
        FreshnessWindow(settings.sources),
        embedders,
        migration.version if migration else 0,
    )
