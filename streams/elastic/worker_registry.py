"""Where each running worker says how far it has applied the suppression ledger: one small record per
worker process in its own index (`settings.workers_index`, not behind the chunks alias).

A deletion request is handled by one worker, but every worker indexes. Before the handling worker
deletes, every live worker must have applied the request's ledger entries under its write gate (so no
batch it planned without them can land after the deletion): each worker writes its ledger offsets
here after applying them, with a heartbeat, and the handler waits until every worker heard from
recently has reached the offsets it published (agents/follow_ledger.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch

from streams.elastic.record_index import ensure_record_index

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "instance": {"type": "keyword"},
        "worker_id": {"type": "keyword"},
        "web_port": {"type": "integer"},
        "heartbeat_at": {"type": "date"},
        "started_at": {"type": "date"},
        "ledger_offsets": {"type": "object", "enabled": False},
        "migration_version": {"type": "long"},
    },
}


def ensure_registry(client: Elasticsearch, index: str) -> None:
    ensure_record_index(client, index, MAPPING)


async def report(client: AsyncElasticsearch, index: str, record: Mapping[str, Any], offsets: Mapping[int, int]) -> None:
    """Write this worker's record (refreshed at once: a waiting handler searches for it)."""
    body = {**record, "ledger_offsets": {str(p): o for p, o in offsets.items()}}
    await client.index(index=index, id=record["instance"], document=body, refresh=True)


async def remove(client: AsyncElasticsearch, index: str, instance: str) -> None:
    await client.options(ignore_status=404).delete(index=index, id=instance, refresh=True)


@dataclass(frozen=True)
class LiveWorker:
    """What a live worker last reported: how far it applied the ledger and the migration record."""

    ledger_offsets: dict[int, int]  # partition -> next offset
    migration_version: int = 0  # 0: none


async def live_workers(client: AsyncElasticsearch, index: str, since: datetime) -> dict[str, LiveWorker]:
    """instance -> the record of every worker whose heartbeat is newer than `since`."""
    response = await client.search(
        index=index,
        size=1000,
        query={"range": {"heartbeat_at": {"gte": since.isoformat()}}},
        ignore_unavailable=True,
    )
    return {
        hit["_source"]["instance"]: LiveWorker(
            {int(p): int(o) for p, o in hit["_source"].get("ledger_offsets", {}).items()},
            int(hit["_source"].get("migration_version") or 0),
        )
        for hit in response["hits"]["hits"]
    }


def behind_migration(workers: Mapping[str, LiveWorker], version: int) -> list[str]:
    """The workers that have not applied migration record `version` (0: the record was deleted)."""
    return sorted(instance for instance, worker in workers.items() if worker.migration_version != version)


def lagging(workers: Mapping[str, LiveWorker], wanted: Mapping[int, int]) -> list[str]:
    """The workers that have not yet applied the ledger up to `wanted` (partition -> next offset)."""
    return sorted(
        instance
        for instance, worker in workers.items()
        if any(worker.ledger_offsets.get(partition, 0) < offset for partition, offset in wanted.items())
    )
