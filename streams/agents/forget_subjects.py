"""The deletion lane: its own agent, so a request never waits behind the embedding backlog.

For each request: expand the subject's identifiers through identity records, record them in the
suppression ledger (so nothing indexes them again), pass the indexer's write gate, delete and scrub
every trace from the index, verify by searching, tombstone the subject's dead letters, and publish a
receipt. The request's offset moves only after the receipt is safe on Kafka: a worker killed midway
handles the request again after restart (every step is idempotent). A force merge then purges the
deleted documents physically, and a second receipt records when.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from streams import avro
from streams.agents.runtime import Runtime, get_runtime
from streams.app import app, dead_letter_topic, deletion_topic, receipts_topic, settings
from streams.elastic import forget_subject
from streams.errors import DecodeError, StreamsError
from streams.observability import metrics
from streams.observability.dead_letters import dead_letter_key, dead_letter_record, encode_dead_letter
from streams.observability.forget_dead_letters import tombstone_dead_letters
from streams.records import Origin

log = logging.getLogger(__name__)


class PurgeScheduler:
    """Coalesces purges: one force merge per window covers every request received in it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pending: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def schedule(self, receipt: dict[str, Any]) -> None:
        self.pending.append(receipt)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        await asyncio.sleep(settings.purge_window_s)
        receipts, self.pending = self.pending, []
        while True:
            try:
                await forget_subject.purge(self.runtime.es, settings.index_alias)
                break
            except Exception as exc:  # the cluster may be briefly away: the purge must still happen
                log.warning("purge failed, retrying in 5s: %s", exc)
                await asyncio.sleep(5)
        purged_at = datetime.now(UTC)
        for receipt in receipts:
            await _publish_receipt({**receipt, "purged_at": purged_at, "status": "purged"})
        log.info("purged deleted documents for %d deletion requests", len(receipts))


_scheduler: PurgeScheduler | None = None


async def _publish_receipt(receipt: dict[str, Any]) -> None:
    future = await receipts_topic.send(
        key=receipt["request_id"].encode(), value=avro.encode("deletion_receipt", receipt, settings.schema_registry_url)
    )
    await future


async def _publish_ledger(identifiers: list[str], request_id: str) -> None:
    now = datetime.now(UTC)
    for name in identifiers:
        entry = {"identifier": name, "request_id": request_id, "forgotten_at": now}
        future = await app.topic(settings.ledger_topic, key_type=bytes, value_type=bytes).send(
            key=name.encode(), value=avro.encode("forget_ledger_entry", entry, settings.schema_registry_url)
        )
        await future


async def handle_request(runtime: Runtime, request: dict[str, Any]) -> dict[str, Any]:
    """Forget one subject; returns the receipt (already published)."""
    received_at = datetime.now(UTC)
    es, alias = runtime.es, settings.index_alias
    first = forget_subject.identifier(request["subject_kind"], request["subject"])
    identifiers = await forget_subject.expand_identities(es, alias, {first})
    runtime.ledger.add(identifiers)
    await _publish_ledger(sorted(identifiers), request["request_id"])
    vector = (await runtime.embedder.encode_async([request["subject"]]))[0]
    async with runtime.ledger.gate:  # no batch planned before the ledger update can land after this
        outcome = await forget_subject.forget(es, alias, identifiers)
        verification = await forget_subject.verify_forgotten(es, alias, identifiers, request["subject"], vector)
    unsearchable_at = datetime.now(UTC)
    if not verification.clean:
        raise StreamsError(f"subject still found after deletion: {verification}", stage="forget")
    tombstoned = await asyncio.get_running_loop().run_in_executor(
        None, tombstone_dead_letters, settings, identifiers
    )
    generations = await forget_subject.indices(es, alias)
    removed = [
        {
            "index": index,
            "source": source,
            "chunks": outcome.removed.get((index, source), 0),
            "documents": len(outcome.documents.get((index, source), set())),
        }
        for index in generations
        for source in settings.sources
    ]
    receipt = {
        "request_id": request["request_id"],
        "subject": request["subject"],
        "subject_kind": request["subject_kind"],
        "identifiers": sorted(identifiers),
        "removed": removed,
        "state_records_removed": outcome.state_records,
        "dead_letters_tombstoned": tombstoned,
        "verification": {
            "subject_field_hits": verification.subject_field_hits,
            "bm25_hits": verification.bm25_hits,
            "knn_hits": verification.knn_hits,
            "hybrid_hits": verification.hybrid_hits,
            "verified_at": unsearchable_at,
        },
        "received_at": received_at,
        "unsearchable_at": unsearchable_at,
        "purged_at": None,
        "status": "unsearchable",
    }
    await _publish_receipt(receipt)
    requested_at = request["requested_at"]
    metrics.DELETION_SECONDS.observe(max((unsearchable_at - requested_at).total_seconds(), 0.0))
    metrics.DELETION_REQUESTS.labels(status="unsearchable").inc()
    log.info(
        "forgot %s (%s): %d chunks, %d state records, unsearchable %.2fs after the request",
        request["subject"], ", ".join(sorted(identifiers)), sum(outcome.removed.values()),
        outcome.state_records, (unsearchable_at - requested_at).total_seconds(),
    )
    return receipt


@app.agent(deletion_topic, concurrency=1)
async def forget_subjects(stream):  # type: ignore[no-untyped-def]
    global _scheduler
    runtime = await get_runtime(settings)
    _scheduler = _scheduler or PurgeScheduler(runtime)
    async for event in stream.events():
        message = event.message
        try:
            request = avro.decode("deletion_request", message.value)
        except DecodeError as exc:
            origin = Origin(message.topic, message.partition, message.offset)
            record = dead_letter_record(origin, message.key, message.value, exc)
            record["stage"] = "forget"
            future = await dead_letter_topic.send(key=dead_letter_key(origin), value=encode_dead_letter(record))
            await future
            continue
        backoff = 0.5
        while True:
            try:
                receipt = await handle_request(runtime, request)
                break
            except Exception as exc:  # transient or not, a deletion request is never dropped
                metrics.RETRIES.labels(stage="forget").inc()
                log.warning("deletion request %s failed, retrying in %.1fs: %s", request["request_id"], backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        _scheduler.schedule(receipt)
