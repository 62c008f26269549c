"""A deletion request retried after an attempt that failed late (its verification, a timeout) gets a
receipt that lists what the failed attempt deleted: the next attempt finds it gone, and a receipt
built from that attempt alone would certify "nothing removed" (a CI run once saw exactly that). The
same after a worker dies midway: what it noted is saved in Elasticsearch before it writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from streams.elastic.bulk import BulkLimits
from streams.errors import IndexingError, StreamsError
from streams.forget import purge
from streams.forget.erase import erase
from streams.forget.expand import Identity
from streams.forget.lane import ForgetLane, LaneIO
from streams.forget.outcome import ForgetOutcome
from streams.forget.progress import ForgetProgress, pending_purges
from streams.forget.purge import PurgeScheduler
from streams.forget.receipt import Receipt, RemovedCount, VerificationRecord
from streams.forget.request import DeletionRequest
from streams.pipeline.mentions import Redactor
from streams.settings import Settings
from tests.unit.fake_elasticsearch import FakeElasticsearch, run

SUBJECT = "email:ann@example.com"
CHUNK = "crm/contact/7#root#0"
PROGRESS = "progress"
KEY = b"k" * 32


def one_chunk_index() -> FakeElasticsearch:
    """An index holding one chunk whose `subjects` names the person, and an empty progress index."""
    fake = FakeElasticsearch(aliases={"chunks": ["v1"]})
    fake.put("v1", CHUNK, {"kind": "chunk", "source": "crm", "document_id": "crm/contact/7", "subjects": [SUBJECT]})
    return fake


async def _no_embedding(texts: list[str]) -> list[list[float]]:
    raise AssertionError("nothing to redact")


async def _erase(es: AsyncElasticsearch, outcome: ForgetOutcome | None, progress: ForgetProgress | None = None) -> Any:
    identity = Identity({SUBJECT})  # no mention patterns: deletion only
    save = progress.save if progress else None
    return await erase(
        es,
        "chunks",
        identity,
        Redactor(b"k" * 32, {}),
        _no_embedding,
        outcome=outcome,
        before_write=save,
        limits=BulkLimits(retries=0),
    )


def test_an_outcome_kept_over_attempts_lists_what_an_earlier_attempt_deleted() -> None:
    fake = one_chunk_index()
    outcome = ForgetOutcome([])

    async def scenario(es: AsyncElasticsearch) -> tuple[ForgetOutcome, ForgetOutcome]:
        await _erase(es, outcome)  # the first attempt deletes the chunk (and then, say, its verification fails)
        assert fake.ids("v1") == set()
        again = await _erase(es, outcome)  # the retry finds nothing left to delete
        return again, await _erase(es, None)

    again, fresh = run(fake, scenario)
    assert again is outcome
    assert again.removed_documents == {("v1", "crm"): {"crm/contact/7"}}
    assert again.identifiers == [SUBJECT]
    assert fresh.removed == {}  # what a fresh outcome per attempt would have certified


def test_a_worker_cut_short_after_its_delete_leaves_the_note_for_the_next_worker() -> None:
    fake = one_chunk_index()
    # Elasticsearch applies the bulk request, and the attempt fails before it learns so (a status the
    # client does not retry itself, as it would a 503).
    fake.after_bulk = 400

    async def scenario(es: AsyncElasticsearch) -> ForgetOutcome:
        with pytest.raises(IndexingError):
            await _erase(es, ForgetOutcome([]), ForgetProgress(es, PROGRESS, "r1", KEY))
        assert fake.ids("v1") == set()  # deleted, and the attempt gone before any receipt
        progress = ForgetProgress(es, PROGRESS, "r1", KEY)  # a new worker, a new attempt
        outcome = await progress.load(ForgetOutcome([]))
        await _erase(es, outcome, progress)
        assert SUBJECT not in str(fake.source(PROGRESS, "r1")), "the saved note holds ids, never the identifier"
        await progress.clear()
        return outcome

    outcome = run(fake, scenario)
    assert outcome.removed == {("v1", "crm"): {CHUNK}}
    assert outcome.removed_documents == {("v1", "crm"): {"crm/contact/7"}}
    assert fake.ids(PROGRESS) == set()


REQUEST = DeletionRequest("r1", "ann@example.com", "email", "compliance", datetime.now(UTC))


class Attempts(ForgetLane):
    """The lane, its attempts replaced by `attempt` (what `handle_with_retries` does around them is tested)."""

    def __init__(self, es: AsyncElasticsearch, max_attempts: int, attempt: Callable[..., Awaitable[Any]]) -> None:
        settings = Settings(forget_max_attempts=max_attempts, forget_progress_index=PROGRESS)
        runtime = type("Runtime", (), {"es": es})()
        super().__init__(settings, runtime, LaneIO(*([None] * 5)))  # type: ignore[arg-type]
        self.attempt = attempt

    async def handle(self, request: DeletionRequest, outcome: ForgetOutcome, progress: ForgetProgress) -> Receipt:
        return await self.attempt(outcome)  # type: ignore[no-any-return]


def test_the_lane_gives_every_attempt_of_a_request_the_same_outcome() -> None:
    seen: list[ForgetOutcome] = []

    async def attempt(outcome: ForgetOutcome) -> list[str]:
        seen.append(outcome)
        if len(seen) == 1:
            outcome.note_removed(("v1", "crm"), CHUNK, "crm/contact/7")
            raise StreamsError("subject still found after deletion", stage="forget")
        return sorted(doc for docs in outcome.removed_documents.values() for doc in docs)

    result = run(one_chunk_index(), lambda es: Attempts(es, 3, attempt).handle_with_retries(REQUEST))
    assert result == ["crm/contact/7"]
    assert len(seen) == 2 and seen[0] is seen[1]


def test_a_request_that_fails_every_time_is_given_up_after_the_set_attempts() -> None:
    """The lane is never blocked by one request: after forget_max_attempts failures it returns the
    error (a dead letter and a `failed` receipt follow), and the request's saved note is cleared."""
    attempts: list[int] = []

    async def attempt(outcome: ForgetOutcome) -> None:
        attempts.append(1)
        raise StreamsError("subject still found after deletion", stage="forget")

    fake = one_chunk_index()
    fake.put(PROGRESS, "r1", {"request_id": "r1", "entries": []})
    result = run(fake, lambda es: Attempts(es, 2, attempt).handle_with_retries(REQUEST))
    assert isinstance(result, StreamsError) and "gave up after 2 failed attempts" in str(result)
    assert len(attempts) == 2 and fake.ids(PROGRESS) == set()


def _receipt(now: datetime) -> Receipt:
    return Receipt(
        request_id="r1",
        subject="ann@example.com",
        subject_kind="email",
        identifiers=[SUBJECT],
        pattern_hashes=[],
        removed=[RemovedCount("v1", "crm", 1, 1, ["crm/contact/7"])],
        redacted=[],
        state_records_removed=1,
        dead_letters_tombstoned=0,
        verification=VerificationRecord(0, 0, 0, 0, now),
        received_at=now,
        unsearchable_at=now,
        purged_at=None,
        status="unsearchable",
        error=None,
    )


def test_a_receipt_is_kept_until_the_purge_and_a_new_worker_finds_it() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    receipt = _receipt(now)

    async def scenario(es: AsyncElasticsearch) -> None:
        progress = ForgetProgress(es, PROGRESS, "r1", KEY)
        await progress.save(ForgetOutcome([SUBJECT]))
        assert await pending_purges(es, PROGRESS) == []  # still being handled: not a purge
        await progress.await_purge(receipt)
        assert await pending_purges(es, PROGRESS) == [receipt]  # the same typed receipt, read back
        await progress.clear()
        assert await pending_purges(es, PROGRESS) == []

    run(FakeElasticsearch(), scenario)


def test_every_receipt_carries_every_field_of_its_schema() -> None:
    """The `rejected` and `failed` receipts used to leave half their fields to Avro defaults."""
    from streams import avro

    now = datetime.now(UTC).replace(microsecond=0)
    fields = {field["name"] for field in avro.load_schema("deletion_receipt")["fields"]}
    rejected = Receipt.rejected("r2", {"subject": "x"}, "InvalidRequest: unknown subject kind", now)
    failed = Receipt.failed(REQUEST, "gave up", now)
    for receipt in (_receipt(now), rejected, failed, _receipt(now).purged(now)):
        assert set(receipt.to_dict()) == fields
        assert (
            Receipt.from_dict(avro.decode("deletion_receipt", avro.encode("deletion_receipt", receipt.to_dict())))
            == receipt
        )
    assert (rejected.status, failed.status, _receipt(now).purged(now).status) == ("rejected", "failed", "purged")


def test_resuming_pending_purges_never_stops_the_lane(monkeypatch: Any) -> None:
    """A pending purge is scheduled; a failure to read them is logged, not raised into the lane."""
    scheduled: list[str] = []
    receipt = _receipt(datetime.now(UTC))

    async def pending(client: Any, index: str) -> list[Receipt]:
        return [receipt]

    async def broken(client: Any, index: str) -> list[Receipt]:
        raise ValueError("mapping conflict")

    async def unused(receipt: Receipt) -> None:
        raise AssertionError("no purge runs in this test")

    scheduler = PurgeScheduler(None, lambda: "", window_s=0, progress_index=PROGRESS, send_receipt=unused)  # type: ignore[arg-type]
    monkeypatch.setattr(scheduler, "schedule", lambda receipt: scheduled.append(receipt.request_id))
    monkeypatch.setattr(purge, "pending_purges", pending)
    asyncio.run(scheduler.resume())
    assert scheduled == ["r1"]
    monkeypatch.setattr(purge, "pending_purges", broken)
    asyncio.run(scheduler.resume())  # logged, and the lane goes on
    assert scheduled == ["r1"]


def test_the_purge_waits_for_its_force_merge_task_and_fails_on_its_error() -> None:
    """The merge runs as a task: the purge returns once it completed, and a merge that reports an
    error (or a failed shard) raises, so the receipt is not certified "purged"."""

    async def scenario(es: AsyncElasticsearch) -> None:
        await purge.purge(es, "chunks", poll_s=0)
        assert fake.merges == 1 and fake.merge_polls == 0  # both running polls were waited out
        fake.merge_error = {"type": "illegal_state_exception", "reason": "merge aborted"}
        with pytest.raises(IndexingError, match="merge aborted"):
            await purge.purge(es, "chunks", poll_s=0)

    fake = FakeElasticsearch(aliases={"chunks": ["v1"]}, merge_polls=2)
    run(fake, scenario)


def test_a_receipt_scheduled_while_a_merge_runs_is_purged_by_the_next_window() -> None:
    """A deletion arriving while the previous window's merge runs used to be appended to a window
    that had already been taken, and waited for a purge that never came."""
    from dataclasses import replace

    first, second = _receipt(datetime.now(UTC)), replace(_receipt(datetime.now(UTC)), request_id="r2")
    sent: list[tuple[str, str]] = []

    async def send(receipt: Receipt) -> None:
        sent.append((receipt.request_id, receipt.status))

    async def scenario(es: AsyncElasticsearch) -> None:
        scheduler = PurgeScheduler(es, lambda: "chunks", window_s=0, progress_index=PROGRESS, send_receipt=send)
        polls = 0

        def on_request(endpoint: str) -> None:
            nonlocal polls
            if endpoint.startswith("fake:"):  # a poll of the first merge: it is still running
                polls += 1
                if polls == 1:
                    scheduler.schedule(second)

        fake.observe = on_request
        scheduler.schedule(first)
        for _ in range(1000):  # the first merge is polled again after 2 s
            if len(sent) == 2:
                break
            await asyncio.sleep(0.01)
        assert sent == [("r1", "purged"), ("r2", "purged")]
        assert fake.merges == 2  # the second request got a merge of its own, after the first

    fake = FakeElasticsearch(aliases={"chunks": ["v1"]}, merge_polls=1)
    run(fake, scenario)
