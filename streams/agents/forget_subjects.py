"""The deletion lane: its own agent, so a request never waits behind the embedding backlog.

For each request: expand the subject's identifiers through identity records, record them in the
suppression ledger (so nothing indexes them again), pass the indexer's write gate, delete and scrub
every trace from the index, verify by searching, tombstone the subject's dead letters, and publish a
receipt. The request's offset moves only after the receipt is safe on Kafka: a worker killed midway
handles the request again after restart (every step is idempotent). A force merge then purges the
deleted documents physically, and a second receipt records when.

`register` adds the agent to the worker's App; the worker service (agents/service.py) owns the purge
scheduler and resumes, at start, the purges a stopped worker left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TopicT

from streams import avro
from streams.agents.follow_ledger import wait_applied
from streams.agents.runtime import Runtime
from streams.elastic import forget_progress, forget_subject
from streams.elastic.forget_progress import ForgetProgress
from streams.elastic.forget_subject import ForgetOutcome
from streams.errors import DecodeError, InvalidRequest, StreamsError
from streams.observability import metrics
from streams.observability.dead_letters import dead_letter_key, dead_letter_record, encode_dead_letter
from streams.observability.forget_dead_letters import tombstone_dead_letters
from streams.pipeline.mentions import Redactor, could_mention, pattern_hashes
from streams.pipeline.validate_deletion_request import validate_deletion_request
from streams.records import Origin
from streams.retrying import retry_transient
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.agents.service import WorkerService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletionLane:
    """What the lane's functions need from their worker: its settings and the topics they write."""

    settings: Settings
    receipts: TopicT
    ledger: TopicT
    dead_letters: TopicT


class PurgeScheduler:
    """Coalesces purges: one force merge per window covers every request received in it."""

    def __init__(self, lane: DeletionLane, runtime: Callable[[], Awaitable[Runtime]]) -> None:
        self.lane = lane
        self.runtime = runtime  # the worker's, once built
        self.pending: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def schedule(self, receipt: dict[str, Any]) -> None:
        self.pending.append(receipt)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        settings = self.lane.settings
        await asyncio.sleep(settings.purge_window_s)
        receipts, self.pending = self.pending, []
        runtime = await self.runtime()
        try:  # the cluster may be briefly away: the purge waits for it
            # Every generation a deletion reaches (during a migration, the old and the new one), read
            # at each attempt: a migration may start or finish while the purge waits.
            await retry_transient(
                lambda: forget_subject.purge(
                    runtime.es, ",".join(expression for expression, _ in runtime.forget_groups())
                ),
                stage="purge",
                what="the purge force merge",
                permanent_attempts=5,
            )
        except Exception as exc:  # not transient, five times: the receipts stay "unsearchable", purged_at null
            log.error("purge for %d deletion requests failed for good: %s", len(receipts), exc)
            return
        purged_at = datetime.now(UTC)
        for receipt in receipts:
            await _publish_receipt(self.lane, {**receipt, "purged_at": purged_at, "status": "purged"})
            await ForgetProgress(runtime.es, settings.forget_progress_index, receipt["request_id"]).clear()
        log.info("purged deleted documents for %d deletion requests", len(receipts))

    async def resume(self) -> None:
        """Schedule the purges a worker that died left pending (their receipts saved, forget_progress.py).
        Runs beside the lane, never in its way: an outage is waited out, any other failure is logged."""
        runtime = await self.runtime()
        try:
            receipts = await retry_transient(
                lambda: forget_progress.pending_purges(runtime.es, self.lane.settings.forget_progress_index),
                stage="purge",
                what="reading the purges left pending",
            )
        except Exception as exc:
            log.error("could not read the purges a stopped worker left pending (next start tries again): %s", exc)
            return
        for receipt in receipts:
            self.schedule(receipt)
        if receipts:
            log.info("%d purges left pending by a stopped worker: scheduled", len(receipts))


async def _publish_receipt(lane: DeletionLane, receipt: dict[str, Any]) -> None:
    value = avro.encode("deletion_receipt", receipt, lane.settings.schema_registry_url)
    future = await lane.receipts.send(key=receipt["request_id"].encode(), value=value)
    await future


async def _publish_ledger(lane: DeletionLane, entries: dict[str, str], request_id: str) -> dict[int, int]:
    """Keyed hashes only: the ledger topic is not a list of forgotten people. Returns, per partition,
    the offset past the last entry written: what every worker must have applied (follow_ledger.py)."""
    now = datetime.now(UTC)
    settings, topic = lane.settings, lane.ledger
    written: dict[int, int] = {}
    sent = []
    for digest, kind in sorted(entries.items()):
        entry = {
            "identifier": None,
            "pattern_hash": digest,
            "pattern_kind": kind,
            "request_id": request_id,
            "forgotten_at": now,
        }
        sent.append(
            await topic.send(
                key=digest.encode(), value=avro.encode("forget_ledger_entry", entry, settings.schema_registry_url)
            )
        )
    # Acknowledged together: one round trip to the brokers, not one per entry.
    for metadata in await asyncio.gather(*sent):
        written[metadata.partition] = max(written.get(metadata.partition, 0), metadata.offset + 1)
    return written


def _counts(
    sources: tuple[str, ...],
    per_key: dict[tuple[str, str], set[str]],
    documents: dict[tuple[str, str], set[str]],
    generations: list[str],
) -> list[dict[str, Any]]:
    return [
        {
            "index": index,
            "source": source,
            "chunks": len(per_key.get((index, source), set())),
            "documents": len(documents.get((index, source), set())),
            "document_ids": sorted(documents.get((index, source), set())),
        }
        for index in generations
        for source in sources
    ]


def _timed_tombstones(
    settings: Settings, identifiers: set[str], mentions: Callable[[str], int], prefilter: Callable[[str], bool]
) -> tuple[int, float]:
    started = time.perf_counter()
    count = tombstone_dead_letters(settings, identifiers, mentions, could_mention=prefilter)
    return count, time.perf_counter() - started


async def handle_request(
    lane: DeletionLane, runtime: Runtime, request: dict[str, Any], outcome: ForgetOutcome, progress: ForgetProgress
) -> dict[str, Any]:
    """Forget one subject; returns the receipt (already published). `outcome` is the request's, kept
    over its attempts, and `progress` saves it in Elasticsearch before each write: what an attempt
    that failed, or a worker that died, deleted or redacted is in the receipt too."""
    settings = lane.settings
    received_at = datetime.now(UTC)
    phases = forget_subject.Phases()
    phases.add("queue", max((received_at - request["requested_at"]).total_seconds(), 0.0))
    validate_deletion_request(request)
    es, key = runtime.es, settings.ledger_key_bytes()
    # Every generation behind the alias, and those a migration builds beside it, each with its own model.
    groups = runtime.forget_groups()
    alias = ",".join(expression for expression, _ in groups)
    first = forget_subject.identifier(request["subject_kind"], request["subject"])
    with phases.timed("expand"):  # and what earlier attempts (any worker's) removed
        identity, _ = await asyncio.gather(forget_subject.expand_identities(es, alias, {first}), progress.load(outcome))
    # The verification's kNN and hybrid probes need each pattern's vector in each model's space:
    # embedded while the ledger is published and the index is cleaned, not after.
    patterns = sorted(identity.patterns, key=str)
    pattern_vectors = [
        asyncio.ensure_future(embedder.encode_async([pattern.phrase() for pattern in patterns]))
        for _, embedder in groups
    ]
    tombstoning: asyncio.Future[tuple[int, float]] | None = None
    try:
        hashes = pattern_hashes(key, identity.patterns)
        entries: dict[str, str] = {**runtime.ledger.add_identifiers(identity.identifiers), **hashes}
        runtime.ledger.add_patterns(hashes)
        with phases.timed("ledger"):
            written = await _publish_ledger(lane, entries, request["request_id"])
            # Other workers index too: each must apply these entries under its own write gate before
            # the deletion, or a batch it planned without them could write the subject back after it.
            await wait_applied(es, written, settings)
        redactor = Redactor(key, hashes)
        # The dead-letter scan reads a whole topic (seconds): it runs beside the index work, in a
        # thread, so that the next request does not queue behind it. Only its result waits for it.
        tombstoning = asyncio.get_running_loop().run_in_executor(
            None,
            partial(
                _timed_tombstones,
                settings,
                identity.identifiers,
                redactor.mentions,
                could_mention(identity.patterns),
            ),
        )
        asked = time.perf_counter()
        async with runtime.ledger.gate:  # no batch planned before the ledger update can land after this
            phases.add("gate", time.perf_counter() - asked)  # a batch's bulk write in flight
            verification = None
            for (expression, embedder), vectors in zip(groups, pattern_vectors, strict=True):
                embed = embedder.encode_async
                await forget_subject.forget(es, expression, identity, redactor, embed, phases, outcome, progress.save)
                with phases.timed("verify"):
                    checked = await forget_subject.verify_forgotten(
                        es, expression, identity, redactor, embed, await vectors
                    )
                verification = checked if verification is None else verification.merged(checked)
            assert verification is not None  # forget_groups always names the serving one
    except BaseException:
        for future in pattern_vectors:  # a failed attempt: the next one embeds again
            if not future.done():
                future.cancel()
        if tombstoning is not None:  # the next attempt scans again; this scan's outcome is not needed
            tombstoning.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise
    unsearchable_at = datetime.now(UTC)
    if not verification.clean:
        raise StreamsError(f"subject still found after deletion: {verification}", stage="forget")
    with phases.timed("tombstone"):  # what is left of the scan once the index is clean
        tombstoned, scan_seconds = await tombstoning
    phases.add("scan", scan_seconds)  # the whole scan, most of it beside the index work
    generations = await forget_subject.indices(es, alias)
    receipt = {
        "request_id": request["request_id"],
        "subject": request["subject"],
        "subject_kind": request["subject_kind"],
        "identifiers": sorted(identity.identifiers),
        "pattern_hashes": sorted(hashes),
        "removed": _counts(settings.sources, outcome.removed, outcome.removed_documents, generations),
        "redacted": _counts(settings.sources, outcome.redacted, outcome.redacted_documents, generations),
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
        "error": None,
    }
    with phases.timed("receipt"):
        await _publish_receipt(lane, receipt)
    await progress.await_purge(receipt)  # kept until the purge (a worker dying before it redoes the purge)
    requested_at = request["requested_at"]
    metrics.DELETION_SECONDS.observe(max((unsearchable_at - requested_at).total_seconds(), 0.0))
    metrics.DELETION_REQUESTS.labels(status="unsearchable").inc()
    for phase, seconds in phases.seconds.items():
        metrics.DELETION_PHASE_SECONDS.labels(phase=phase).inc(seconds)
    log.info(
        "forgot %s (%s; %d mention patterns): %d chunks of %d documents deleted, %d chunks of %d documents "
        "redacted, %d state records; unsearchable %.2fs after the request (%s)",
        request["subject"],
        ", ".join(sorted(identity.identifiers)),
        len(identity.patterns),
        sum(map(len, outcome.removed.values())),
        sum(map(len, outcome.removed_documents.values())),
        sum(map(len, outcome.redacted.values())),
        sum(map(len, outcome.redacted_documents.values())),
        outcome.state_records,
        (unsearchable_at - requested_at).total_seconds(),
        phases,
    )
    return receipt


async def _give_up(
    lane: DeletionLane, message: Any, request: dict[str, Any] | None, error: StreamsError, status: str
) -> None:
    """A request that cannot be carried out: a dead letter with the reason, and a receipt that says so,
    so compliance never waits on a request that will not happen."""
    origin = Origin(message.topic, message.partition, message.offset)
    record = dead_letter_record(origin, message.key, message.value, error)
    record["stage"] = "forget"
    future = await lane.dead_letters.send(
        key=dead_letter_key(origin), value=encode_dead_letter(record, lane.settings.schema_registry_url)
    )
    await future
    metrics.DELETION_REQUESTS.labels(status=status).inc()
    if request is None:
        return
    now = datetime.now(UTC)
    await _publish_receipt(
        lane,
        {
            "request_id": request.get("request_id") or f"{origin.topic}/{origin.partition}/{origin.offset}",
            "subject": request.get("subject") or "",
            "subject_kind": request.get("subject_kind") or "",
            "identifiers": [],
            "removed": [],
            "state_records_removed": 0,
            "verification": {
                "subject_field_hits": 0,
                "bm25_hits": 0,
                "knn_hits": 0,
                "hybrid_hits": 0,
                "verified_at": now,
            },
            "received_at": now,
            "unsearchable_at": now,
            "status": status,
            "error": error.reason,
        },
    )
    log.error("deletion request %s %s: %s", request.get("request_id"), status, error.reason)


def register(app: faust.App, service: WorkerService) -> None:
    """The deletion lane's agent, on the deletion topic: one request at a time, in order."""
    lane = service.lane

    @app.agent(service.topics.deletion, name=f"{__name__}.forget_subjects", concurrency=1)
    async def forget_subjects(stream):  # type: ignore[no-untyped-def]
        runtime = await service.runtime()
        async for event in stream.events():
            message = event.message
            try:
                request = avro.decode("deletion_request", message.value)
            except DecodeError as exc:
                await _give_up(lane, message, None, exc, "rejected")
                continue
            try:
                validate_deletion_request(request)
            except InvalidRequest as exc:
                await _give_up(lane, message, request, exc, "rejected")
                continue
            receipt = await _handle_with_retries(lane, runtime, request)
            if isinstance(receipt, StreamsError):
                await _give_up(lane, message, request, receipt, "failed")
                continue
            service.purges.schedule(receipt)


# One attempt at a request: handle_request, or a test's stand-in.
Attempt = Callable[[DeletionLane, Runtime, dict[str, Any], ForgetOutcome, ForgetProgress], Awaitable[dict[str, Any]]]


async def _handle_with_retries(
    lane: DeletionLane, runtime: Runtime, request: dict[str, Any], attempt: Attempt = handle_request
) -> dict[str, Any] | StreamsError:
    """An outage is retried for as long as it lasts: a deletion request is never dropped for one. Any
    other failure is retried a few times (a concurrent write can make a verification fail once), then
    the request is given up: it must not block the lane."""
    settings = lane.settings
    outcome = ForgetOutcome([])  # one for every attempt: a retry finds gone what the last one did
    progress = ForgetProgress(runtime.es, settings.forget_progress_index, request["request_id"])
    try:
        return await retry_transient(
            lambda: attempt(lane, runtime, request, outcome, progress),
            stage="forget",
            what=f"deletion request {request['request_id']}",
            permanent_attempts=settings.forget_max_attempts,
        )
    except Exception as exc:  # not transient, and failed every attempt: given up, with the reason
        reason = f"gave up after {settings.forget_max_attempts} failed attempts; last: {exc}"
        with contextlib.suppress(Exception):  # the failed receipt says why; no partial note is kept
            await progress.clear()
        return StreamsError(reason, stage="forget")
