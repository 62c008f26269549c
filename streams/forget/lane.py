"""One deletion request, from a valid request to its published receipt.

For each request: expand the subject's identifiers through identity records, record them in the
suppression ledger (so nothing indexes them again) and wait until every worker applied them, erase
every trace from each index generation, verify by searching, tombstone the subject's dead letters,
and publish a receipt. The request's offset moves only after the receipt is safe on Kafka: a worker
killed midway handles the request again after restart (every step is idempotent).

`ForgetLane` takes what it touches explicitly: the settings, the pieces of the worker's runtime it
reads (`LaneRuntime`) and the Kafka side (`LaneIO`: the faust agent owns the topics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from elasticsearch import AsyncElasticsearch

from streams.elastic.bulk import LIMITS, BulkLimits
from streams.errors import StreamsError
from streams.forget.erase import erase
from streams.forget.expand import Identity, expand_identities, generations
from streams.forget.outcome import ForgetOutcome
from streams.forget.progress import ForgetProgress, UnreadableNote
from streams.forget.receipt import FAILED, NOTHING_INDEXED, REJECTED, Receipt
from streams.forget.request import DeletionRequest
from streams.forget.verify import Verification, verify_forgotten
from streams.observability import metrics
from streams.observability.dead_letters import dead_letter_record
from streams.observability.phases import Phases
from streams.pipeline.mentions import HashKind, Redactor, could_mention, pattern_hashes
from streams.records import Origin
from streams.retrying import retry_transient
from streams.settings import Settings

log = logging.getLogger(__name__)


class Gate(Protocol):
    """The indexer's write gate as the lane uses it (agents/write_gate.py): held whole, batches wait."""

    def exclusive(self) -> contextlib.AbstractAsyncContextManager[None]: ...


class Ledger(Protocol):
    """The suppression ledger as the lane uses it (agents/suppression.py)."""

    @property
    def gate(self) -> Gate: ...

    def add_identifiers(self, identifiers: Iterable[str]) -> dict[str, str]: ...
    def add_patterns(self, hashes: dict[str, HashKind]) -> None: ...


class Encoder(Protocol):
    async def encode_async(self, texts: list[str]) -> list[list[float]]: ...


class LaneRuntime(Protocol):
    """The pieces of the worker's runtime (agents/runtime.py) a request reads."""

    @property
    def es(self) -> AsyncElasticsearch: ...
    @property
    def ledger(self) -> Ledger: ...
    def forget_groups(self) -> Sequence[tuple[str, Encoder]]: ...


class Message(Protocol):
    """The part of the consumed Kafka message a dead letter records."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


Tombstone = Callable[[set[str], Callable[[str], int], Callable[[str], bool]], int]


@dataclass(frozen=True)
class LaneIO:
    """The Kafka side of a request, owned by the agent."""

    publish_ledger: Callable[[dict[str, str], str], Awaitable[dict[int, int]]]  # -> offsets every worker must reach
    wait_applied: Callable[[dict[int, int]], Awaitable[object]]  # until every live worker applied them
    send_receipt: Callable[[Receipt], Awaitable[None]]
    send_dead_letter: Callable[[Origin, dict[str, Any]], Awaitable[None]]
    tombstone: Tombstone  # blocking (reads a whole topic): runs in a thread


class ForgetLane:
    def __init__(self, settings: Settings, runtime: LaneRuntime, io: LaneIO, limits: BulkLimits = LIMITS) -> None:
        self.settings, self.runtime, self.io, self.limits = settings, runtime, io, limits
        # The configured sources (one per mapping file): read once, not once per request.
        self.sources = list(settings.sources)

    def progress(self, request_id: str) -> ForgetProgress:
        return ForgetProgress(
            self.runtime.es, self.settings.forget_progress_index, request_id, self.settings.ledger_key_bytes()
        )

    async def handle_with_retries(self, request: DeletionRequest) -> Receipt | StreamsError:
        """An outage (a 429 too) is retried for as long as it lasts: a deletion request is never
        dropped for one. Any other failure is retried a few times (a concurrent write can make a
        verification fail once), then the request is given up: it must not block the lane."""
        outcome = ForgetOutcome([])  # one for every attempt: a retry finds gone what the last one did
        progress = self.progress(request.request_id)
        attempts = self.settings.forget_max_attempts
        try:
            return await retry_transient(
                lambda: self.handle(request, outcome, progress),
                stage="forget",
                what=f"deletion request {request.request_id}",
                permanent_attempts=attempts,
            )
        except Exception as exc:  # not transient, and failed every attempt: given up, with the reason
            if not isinstance(exc, UnreadableNote):  # a note this worker cannot open is not its to delete
                with contextlib.suppress(Exception):  # the failed receipt says why; no partial note is kept
                    await progress.clear()
            return StreamsError(f"gave up after {attempts} failed attempts; last: {exc}", stage="forget")

    async def handle(self, request: DeletionRequest, outcome: ForgetOutcome, progress: ForgetProgress) -> Receipt:
        """Forget one subject; returns the receipt (already published). `outcome` is the request's, kept
        over its attempts, and `progress` saves it in Elasticsearch before each write: what an attempt
        that failed, or a worker that died, deleted or redacted is in the receipt too."""
        received_at = datetime.now(UTC)
        phases = Phases()
        phases.add("queue", max((received_at - request.requested_at).total_seconds(), 0.0))
        # Every generation behind the alias, and those a migration builds beside it, each with its own model.
        groups = list(self.runtime.forget_groups())
        alias = ",".join(expression for expression, _ in groups)
        with phases.timed("expand"):  # and what earlier attempts (any worker's) removed
            found, _ = await asyncio.gather(
                expand_identities(self.runtime.es, alias, {request.identifier, *request.identifiers}),
                progress.load(outcome),
            )
        identity = _remembered(found, outcome)
        # The verification's kNN and hybrid probes need each pattern's vector in each model's space:
        # embedded while the ledger is published and the index is cleaned, not after.
        phrases = [pattern.phrase() for pattern in sorted(identity.patterns, key=str)]
        vectors = [asyncio.ensure_future(encoder.encode_async(phrases)) for _, encoder in groups]
        tombstoning: asyncio.Future[tuple[int, float]] | None = None
        try:
            hashes = await self._suppress(identity, request.request_id, phases)
            redactor = Redactor(
                self.settings.ledger_key_bytes(),
                hashes,
                policy=self.settings.forget_name_policy,
                window=self.settings.forget_name_window,
            )
            tombstoning = self._start_tombstones(identity, redactor)
            verification = await self._erase_and_verify(groups, vectors, identity, redactor, outcome, progress, phases)
        except BaseException:
            for future in vectors:  # a failed attempt: the next one embeds again
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
        receipt = Receipt.unsearchable(
            request,
            identifiers=identity.identifiers,
            pattern_hashes=hashes,
            outcome=outcome,
            generations=await generations(self.runtime.es, alias),
            sources=self.sources,
            dead_letters_tombstoned=tombstoned,
            verification=verification,
            received_at=received_at,
            unsearchable_at=unsearchable_at,
        )
        with phases.timed("receipt"):
            await self.io.send_receipt(receipt)
        if receipt.status == NOTHING_INDEXED:  # nothing was deleted: no purge, and no note to keep for one
            await progress.clear()
        else:  # kept until the purge (a worker dying before it redoes the purge)
            await progress.await_purge(receipt, outcome)
        _report(request, identity, outcome, phases, unsearchable_at, receipt.status)
        return receipt

    async def _suppress(self, identity: Identity, request_id: str, phases: Phases) -> dict[str, HashKind]:
        """Into the ledger, here and on every worker, before anything is erased; returns the patterns' hashes."""
        ledger = self.runtime.ledger
        hashes = pattern_hashes(self.settings.ledger_key_bytes(), identity.patterns)
        entries: dict[str, str] = {**ledger.add_identifiers(identity.identifiers), **hashes}
        ledger.add_patterns(hashes)
        with phases.timed("ledger"):
            written = await self.io.publish_ledger(entries, request_id)
            # Other workers index too: each must apply these entries under its own write gate before
            # the deletion, or a batch it planned without them could write the subject back after it.
            await self.io.wait_applied(written)
        return hashes

    def _start_tombstones(self, identity: Identity, redactor: Redactor) -> asyncio.Future[tuple[int, float]]:
        """The dead-letter scan reads a whole topic (seconds): it runs beside the index work, in a
        thread, so that the next request does not queue behind it. Only its result waits for it."""
        scan = partial(
            _timed, self.io.tombstone, identity.identifiers, redactor.mentions, could_mention(identity.patterns)
        )
        return asyncio.get_running_loop().run_in_executor(None, scan)

    async def _erase_and_verify(
        self,
        groups: list[tuple[str, Encoder]],
        vectors: Sequence[asyncio.Future[list[list[float]]]],
        identity: Identity,
        redactor: Redactor,
        outcome: ForgetOutcome,
        progress: ForgetProgress,
        phases: Phases,
    ) -> Verification:
        es, verification = self.runtime.es, None
        for (expression, encoder), pattern_vectors in zip(groups, vectors, strict=True):
            embed = encoder.encode_async
            async with self._gate(phases):
                await erase(es, expression, identity, redactor, embed, phases, outcome, progress.save, self.limits)
            with phases.timed("verify"):
                checked = await verify_forgotten(es, expression, identity, redactor, embed, await pattern_vectors)
            verification = checked if verification is None else verification.merged(checked)
        assert verification is not None  # forget_groups always names the serving generation
        return verification

    @contextlib.asynccontextmanager
    async def _gate(self, phases: Phases) -> AsyncIterator[None]:
        """The indexer's write gate, held through one generation's erase and released before its
        verification.

        Taking it waits out a batch's bulk write in flight, the one write that may have been planned
        without the ledger entries; every batch after it re-checks the ledger's version under the gate
        and is planned again with them (agents/write_changes.py), so neither it nor a replayed event
        can write the subject back. The erase must still hold it: it rewrites what it read (a redacted
        chunk is indexed whole, and a scrub deletes the chunk ids its state record listed), so an
        indexing write landing between its search and its write would be overwritten with older text
        or deleted. The verification only reads, and what the indexer writes meanwhile holds no trace
        of the subject: it runs with indexing going on."""
        asked = time.perf_counter()
        async with self.runtime.ledger.gate.exclusive():
            phases.add("gate", time.perf_counter() - asked)
            yield

    async def reject(self, message: Message, record: dict[str, Any] | None, error: StreamsError) -> None:
        """A request that can never be carried out: a dead letter, and (when it decoded) a `rejected` receipt."""
        origin = await self._dead_letter(message, error, REJECTED)
        if record is not None:
            request_id = record.get("request_id") or f"{origin.topic}/{origin.partition}/{origin.offset}"
            await self._settle_given_up(Receipt.rejected(request_id, record, error.reason, datetime.now(UTC)))

    async def fail(self, message: Message, request: DeletionRequest, error: StreamsError) -> None:
        """A request given up after repeated errors: a dead letter with the reason, and a `failed` receipt."""
        await self._dead_letter(message, error, FAILED)
        await self._settle_given_up(Receipt.failed(request, error.reason, datetime.now(UTC)))

    async def _dead_letter(self, message: Message, error: StreamsError, status: str) -> Origin:
        origin = Origin(message.topic, message.partition, message.offset)
        record = dead_letter_record(origin, message.key, message.value, error)
        record["stage"] = "forget"
        await self.io.send_dead_letter(origin, record)
        metrics.DELETION_REQUESTS.labels(status=status).inc()
        return origin

    async def _settle_given_up(self, receipt: Receipt) -> None:
        """So compliance never waits on a request that will not happen."""
        await self.io.send_receipt(receipt)
        log.error("deletion request %s %s: %s", receipt.request_id, receipt.status, receipt.error)


def _remembered(found: Identity, outcome: ForgetOutcome) -> Identity:
    """What this attempt found, and what earlier attempts of the request found (kept in `outcome`,
    and loaded into it from the saved note when another worker made them): once an attempt has
    scrubbed the identity record (its linked identifiers, how the person is written), expanding again
    finds the request's own identifier only, and a retry must still forget everything else."""
    identity = Identity(found.identifiers | set(outcome.identifiers), found.patterns | outcome.patterns)
    outcome.identifiers = sorted(identity.identifiers)
    outcome.patterns |= identity.patterns
    return identity


def _timed(
    tombstone: Tombstone, identifiers: set[str], mentions: Callable[[str], int], prefilter: Callable[[str], bool]
) -> tuple[int, float]:
    started = time.perf_counter()
    count = tombstone(identifiers, mentions, prefilter)
    return count, time.perf_counter() - started


def _report(
    request: DeletionRequest,
    identity: Identity,
    outcome: ForgetOutcome,
    phases: Phases,
    unsearchable_at: datetime,
    status: str,
) -> None:
    """The metrics and the log line an operator reads for a request made unsearchable."""
    seconds = (unsearchable_at - request.requested_at).total_seconds()
    metrics.DELETION_SECONDS.observe(max(seconds, 0.0))
    metrics.DELETION_REQUESTS.labels(status=status).inc()
    for phase, spent in phases.seconds.items():
        metrics.DELETION_PHASE_SECONDS.labels(phase=phase).inc(spent)
    log.info(
        "forgot %s (%s; %d mention patterns): %d chunks of %d documents deleted, %d chunks of %d documents "
        "redacted, %d state records; unsearchable %.2fs after the request (%s)",
        request.subject,
        ", ".join(sorted(identity.identifiers)),
        len(identity.patterns),
        sum(map(len, outcome.removed.values())),
        sum(map(len, outcome.removed_documents.values())),
        sum(map(len, outcome.redacted.values())),
        sum(map(len, outcome.redacted_documents.values())),
        outcome.state_records,
        seconds,
        phases,
    )
