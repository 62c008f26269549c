"""Small one-shard indices that hold a few records each: the worker registry, the migration record,
the deletion requests' progress. Created on first use; on an existing index the mapping's fields
are put again, so a field added by a newer version is there before anyone writes it."""

from __future__ import annotations

from typing import Any

from elasticsearch import BadRequestError, Elasticsearch


def ensure_record_index(client: Elasticsearch, index: str, mappings: dict[str, Any]) -> None:
    if client.indices.exists(index=index):
        client.indices.put_mapping(index=index, properties=mappings["properties"])
        return
    try:
        client.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings=mappings)
    except BadRequestError as exc:  # workers starting together: another one created it a moment ago
        if exc.error != "resource_already_exists_exception":
            raise
