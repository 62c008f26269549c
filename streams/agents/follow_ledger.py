"""Every worker follows the suppression ledger live, and a deletion request waits for all of them.
(The same loop follows the migration record, elastic/generations.py: the index generations written.)

The ledger is read whole when a worker starts (agents/suppression.py); after that, entries published
by a deletion request on another worker arrive here: a consumer outside the group (every worker reads
every partition) applies them under the write gate, so a batch planned without them is planned again
(agents/write_changes.py), and a batch already being written finishes first. Then the worker reports
its ledger offsets in the worker registry (elastic/worker_registry.py), with a heartbeat. The loop
runs as a task of the worker service (agents/service.py), which also removes the worker's registry
entry when it stops.

`wait_applied` is the other half: the worker that handles a deletion request, after publishing its
entries, waits until every live worker's offsets cover them, so that no worker can write a chunk about
the subject after the request has deleted it. A worker not heard from within `worker_liveness_s`
(killed, or cut off) is not waited for; one that stays behind past `ledger_sync_timeout_s` is named
in the log and the request goes on (its verification searches the index all the same).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import TopicPartition
from elasticsearch import AsyncElasticsearch

from streams.agents.runtime import Runtime
from streams.clients import kafka_consumer, unique_group
from streams.elastic import worker_registry
from streams.settings import Settings

log = logging.getLogger(__name__)

# The migration version this worker applied -> its registry record, heartbeat included.
RegistryRecord = Callable[[int], dict[str, Any]]


def registry_record(settings: Settings, instance: str, started_at: datetime, migration_version: int) -> dict[str, Any]:
    return {
        "migration_version": migration_version,
        "instance": instance,
        "worker_id": settings.worker_id,
        "web_port": settings.worker_web_port,
        "started_at": started_at.isoformat(),
        "heartbeat_at": datetime.now(UTC).isoformat(),
    }


async def follow_ledger(settings: Settings, runtime: Runtime, record: RegistryRecord) -> None:
    """Apply the ledger entries other workers publish and report to the registry, until cancelled."""
    ledger = runtime.ledger
    consumer = kafka_consumer(settings, unique_group(f"{settings.worker_id}-ledger-follower"))
    consumer.assign([TopicPartition(settings.ledger_topic, p, o) for p, o in sorted(ledger.offsets.items())])
    # Its own thread: a blocking poll must not hold the event loop nor a thread the embedder needs.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-follower")
    loop = asyncio.get_running_loop()
    last_report = 0.0
    try:
        while True:
            try:
                messages = await loop.run_in_executor(pool, consumer.consume, 500, 0.2)
                added = await ledger.apply_records(messages)
            except Exception as exc:  # this loop must outlive any one failure: it is how the worker learns
                log.error("following the suppression ledger failed, going on in 1s: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if added:
                log.info("suppression ledger: %d entries from another worker's deletion request", added)
            if messages or time.monotonic() - last_report >= settings.worker_heartbeat_s:
                try:
                    # The migration record too: a migration step waits until every worker applied it.
                    await runtime.sync_generations()
                    await worker_registry.report(
                        runtime.es, settings.workers_index, record(runtime.migration_version), ledger.offsets
                    )
                    last_report = time.monotonic()
                except Exception as exc:  # Elasticsearch away: deletion requests wait for it anyway
                    log.warning("could not report to the worker registry: %s", exc)
    finally:
        await loop.run_in_executor(pool, consumer.close)
        pool.shutdown(wait=False)


async def wait_applied(es: AsyncElasticsearch, wanted: Mapping[int, int], settings: Settings) -> list[str]:
    """Wait until every live worker applied the ledger up to `wanted`; returns the workers still behind."""
    deadline = time.monotonic() + settings.ledger_sync_timeout_s
    started = time.monotonic()
    behind: list[str] = []
    while True:
        since = datetime.now(UTC) - timedelta(seconds=settings.worker_liveness_s)
        workers = await worker_registry.live_workers(es, settings.workers_index, since)
        behind = worker_registry.lagging(workers, wanted)
        if not behind:
            log.info("%d live workers applied the ledger entries in %.2fs", len(workers), time.monotonic() - started)
            return []
        if time.monotonic() > deadline:
            log.warning(
                "workers %s did not apply the ledger entries within %.0fs; going on (the verification still searches)",
                ", ".join(behind),
                settings.ledger_sync_timeout_s,
            )
            return behind
        await asyncio.sleep(0.1)
