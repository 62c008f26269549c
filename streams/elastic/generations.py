"""Index generations: how each one was built, which one the alias serves, and the migration record.

Every generation is a concrete index `<alias>-v<N>`. An index remembers how it was built in its
mapping's `_meta` (model name or path, chunk size and overlap), so a worker writes each generation
with the model and chunker that made it, whatever its own settings say. The alias points at one
generation, the serving one, which is also its write index.

A migration (`streams migrate`) builds generation N+1 beside the serving one. While it runs, one
record in `settings.migrations_index` (id: the alias) lists the generations that every worker writes
(each change goes to all of them) and that every deletion request covers. The record's `version`
changes with every step; workers report the version they applied in the worker registry, so a
step that needs every worker to have seen it can wait for them.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch, NotFoundError

from streams.elastic.record_index import ensure_record_index
from streams.errors import IndexingError

GENERATION = 1  # the first generation, which a worker creates when the alias does not exist


def index_name(alias: str, generation: int = GENERATION) -> str:
    return f"{alias}-v{generation}"


def generation_of(index: str) -> int:
    """The generation number of a concrete index (`streams-chunks-v2` -> 2)."""
    match = re.search(r"-v(\d+)$", index)
    if match is None:
        raise IndexingError(f"{index} is not a generation of an index alias (<alias>-v<N>)")
    return int(match.group(1))


def serving_index(client: Elasticsearch, alias: str) -> str | None:
    """The serving generation: the alias's write index (its only index, if none is marked), or None
    when the alias does not exist. The alias is the one record of which generation serves: `streams
    migrate switch` and `rollback` move it atomically, and every reader asks it."""
    try:
        found = client.indices.get_alias(name=alias)
    except NotFoundError:
        return None
    writers = [index for index, body in found.items() if body.get("aliases", {}).get(alias, {}).get("is_write_index")]
    if len(writers) == 1:
        return writers[0]
    return next(iter(found)) if len(found) == 1 else None


@dataclass(frozen=True)
class GenerationConfig:
    """How a generation's chunks are made: what `_meta` of its mapping says."""

    model_name: str
    model_path: str | None
    chunk_max_tokens: int
    chunk_overlap_tokens: int

    def to_meta(self) -> dict[str, Any]:
        return {"streams": asdict(self)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> GenerationConfig | None:
        data = (meta or {}).get("streams")
        return cls(**data) if data else None


@dataclass
class Migration:
    """The migration record: the generations written and the steps taken. Which of them serves is the
    alias's to say (serving_index)."""

    alias: str
    target: str  # the generation being built (or, after a switch, the one now serving)
    previous: str  # the generation serving when the migration started
    state: str = "filling"  # filling -> switched (-> rolled-back -> switched ...) ; finish deletes the record
    version: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    started_at: str = ""
    signals: dict[str, list[str]] = field(default_factory=dict)  # source -> snapshot signal ids
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def generations(self) -> list[str]:
        return sorted({self.previous, self.target}, key=generation_of)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, source: dict[str, Any]) -> Migration:
        """A stored record; fields it no longer has (`serving`, in records of earlier releases) are dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in source.items() if key in known})


def read_config(client: Elasticsearch, index: str) -> GenerationConfig | None:
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    return GenerationConfig.from_meta(mapping.get("_meta"))


def switch_alias(client: Elasticsearch, alias: str, to: str) -> None:
    """Point `alias` at `to` only, in one atomic request: a search sees one generation or the other."""
    current = list(client.indices.get_alias(name=alias)) if client.indices.exists_alias(name=alias) else []
    actions: list[dict[str, Any]] = [{"remove": {"index": index, "alias": alias}} for index in current if index != to]
    actions.append({"add": {"index": to, "alias": alias, "is_write_index": True}})
    client.indices.update_aliases(actions=actions)


MIGRATIONS_MAPPING: dict[str, Any] = {"dynamic": False, "properties": {"alias": {"type": "keyword"}}}


def ensure_migrations_index(client: Elasticsearch, index: str) -> None:
    ensure_record_index(client, index, MIGRATIONS_MAPPING)


async def read_migration(client: AsyncElasticsearch, index: str, alias: str) -> Migration | None:
    """The migration record, None when no migration runs. Async only: the worker follows it on its
    event loop, and `streams migrate` reads it through asyncio.run."""
    try:
        doc = await client.get(index=index, id=alias)
    except NotFoundError:
        return None
    return Migration.from_json(doc["_source"])


def write_migration(client: Elasticsearch, index: str, migration: Migration) -> None:
    migration.version = max(time.time_ns() // 1_000_000, migration.version + 1)
    client.index(index=index, id=migration.alias, document=migration.to_json(), refresh=True)


def delete_migration(client: Elasticsearch, index: str, alias: str) -> None:
    client.options(ignore_status=404).delete(index=index, id=alias, refresh=True)
