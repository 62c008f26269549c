"""A deletion request retried after an attempt that failed late (its verification, a timeout) gets a
receipt that lists what the failed attempt deleted: the next attempt finds it gone, and a receipt
built from that attempt alone would certify "nothing removed" (a CI run once saw exactly that). The
same after a worker dies midway: what it noted is saved in Elasticsearch before it writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.agents import forget_subjects
from streams.elastic.forget_progress import ForgetProgress, pending_purges
from streams.elastic.forget_subject import ForgetOutcome, Identity, forget
from streams.errors import StreamsError
from streams.pipeline.mentions import Redactor
from streams.settings import Settings

SUBJECT = "email:ann@example.com"


class FakeIndices:
    async def refresh(self, index: str) -> None:
        return None


class Died(Exception):
    """The worker, killed -9 in the middle of a bulk request (after Elasticsearch applied it)."""


class OneChunkIndex:
    """An index holding one chunk whose `subjects` names the person, and a progress index."""

    def __init__(self, die_after_bulk: bool = False) -> None:
        self.indices = FakeIndices()
        self.chunks = {"crm/contact/7#root#0": {"source": "crm", "document_id": "crm/contact/7"}}
        self.progress: dict[str, dict[str, Any]] = {}
        self.die_after_bulk = die_after_bulk

    async def get(self, index: str, id: str) -> dict[str, Any]:
        from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
        from elasticsearch import NotFoundError

        if id not in self.progress:
            meta = ApiResponseMeta(404, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
            raise NotFoundError("not found", meta, {})
        return {"_source": self.progress[id]}

    async def index(self, index: str, id: str, document: dict[str, Any]) -> None:
        self.progress[id] = document

    def options(self, **_: Any) -> OneChunkIndex:
        return self

    async def delete(self, index: str, id: str) -> None:
        self.progress.pop(id, None)

    async def search(self, index: str, query: dict[str, Any], **_: Any) -> dict[str, Any]:
        kind = query["bool"]["filter"][0]["term"]["kind"]
        hits = [{"_index": "v1", "_id": chunk, "_source": source} for chunk, source in self.chunks.items()]
        return {"hits": {"hits": hits if kind == "chunk" else []}}

    async def bulk(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        for operation in operations:
            self.chunks.pop(operation["delete"]["_id"], None)
        if self.die_after_bulk:
            raise Died
        return {"errors": False, "items": []}


def _lane(**settings: Any) -> forget_subjects.DeletionLane:
    """A lane whose topics nothing here writes to."""
    unused: Any = None
    return forget_subjects.DeletionLane(Settings(**settings), unused, unused, unused)


async def _no_embedding(texts: list[str]) -> list[list[float]]:
    raise AssertionError("nothing to redact")


def _forget(
    client: OneChunkIndex, outcome: ForgetOutcome | None, progress: ForgetProgress | None = None
) -> ForgetOutcome:
    identity = Identity({SUBJECT})  # no mention patterns: deletion only
    save = progress.save if progress else None
    return asyncio.run(
        forget(
            client,
            "v1",
            identity,
            Redactor(b"k" * 32, {}),
            _no_embedding,  # type: ignore[arg-type]
            outcome=outcome,
            before_write=save,
        )
    )


def test_an_outcome_kept_over_attempts_lists_what_an_earlier_attempt_deleted() -> None:
    client = OneChunkIndex()
    outcome = ForgetOutcome([])
    _forget(client, outcome)  # the first attempt deletes the chunk (and then, say, its verification fails)
    assert client.chunks == {}
    again = _forget(client, outcome)  # the retry finds nothing left to delete
    assert again is outcome
    assert again.removed_documents == {("v1", "crm"): {"crm/contact/7"}}
    assert again.identifiers == [SUBJECT]
    assert _forget(client, None).removed == {}  # what a fresh outcome per attempt would have certified


def test_the_lane_gives_every_attempt_of_a_request_the_same_outcome() -> None:
    seen: list[ForgetOutcome] = []

    async def attempt(
        lane: Any, runtime: Any, request: dict[str, Any], outcome: ForgetOutcome, progress: Any
    ) -> dict[str, Any]:
        seen.append(outcome)
        if len(seen) == 1:
            outcome.note_removed(("v1", "crm"), "crm/contact/7#root#0", "crm/contact/7")
            raise StreamsError("subject still found after deletion", stage="forget")
        return {"removed": sorted(doc for docs in outcome.removed_documents.values() for doc in docs)}

    runtime: Any = type("Runtime", (), {"es": OneChunkIndex()})()
    lane = _lane(forget_max_attempts=3)
    receipt = asyncio.run(forget_subjects._handle_with_retries(lane, runtime, {"request_id": "r1"}, attempt))
    assert receipt == {"removed": ["crm/contact/7"]}
    assert len(seen) == 2 and seen[0] is seen[1]


def test_a_worker_dying_after_its_delete_leaves_the_note_for_the_next_worker() -> None:
    client = OneChunkIndex(die_after_bulk=True)
    with pytest.raises(Died):
        _forget(client, ForgetOutcome([]), ForgetProgress(client, "progress", "r1"))  # type: ignore[arg-type]
    assert client.chunks == {}  # deleted, and the worker gone before any receipt
    client.die_after_bulk = False
    progress = ForgetProgress(client, "progress", "r1")  # type: ignore[arg-type]
    outcome = asyncio.run(progress.load(ForgetOutcome([])))  # a new worker, a new attempt
    _forget(client, outcome, progress)
    assert outcome.removed == {("v1", "crm"): {"crm/contact/7#root#0"}}
    assert outcome.removed_documents == {("v1", "crm"): {"crm/contact/7"}}
    assert SUBJECT not in str(client.progress), "the saved note holds ids, never the identifier"
    asyncio.run(progress.clear())
    assert client.progress == {}


def test_a_request_that_fails_every_time_is_given_up_after_the_set_attempts() -> None:
    """The lane is never blocked by one request: after forget_max_attempts failures it returns the
    error (a dead letter and a `failed` receipt follow), and the request's saved note is cleared."""
    attempts: list[int] = []

    async def attempt(
        lane: Any, runtime: Any, request: dict[str, Any], outcome: ForgetOutcome, progress: Any
    ) -> dict[str, Any]:
        attempts.append(1)
        raise StreamsError("subject still found after deletion", stage="forget")

    client = OneChunkIndex()
    client.progress["r1"] = {"request_id": "r1", "entries": []}
    runtime: Any = type("Runtime", (), {"es": client})()
    result = asyncio.run(
        forget_subjects._handle_with_retries(_lane(forget_max_attempts=2), runtime, {"request_id": "r1"}, attempt)
    )
    assert isinstance(result, StreamsError) and "gave up after 2 failed attempts" in str(result)
    assert len(attempts) == 2 and client.progress == {}


class ProgressIndex(OneChunkIndex):
    async def search(self, index: str, query: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "term" in query and "state" in query["term"]:
            wanted = query["term"]["state"]
            hits = [{"_source": body} for body in self.progress.values() if body.get("state") == wanted]
            return {"hits": {"hits": hits}}
        return await super().search(index, query)


def _receipt(request_id: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC).replace(microsecond=0)
    return {
        "request_id": request_id,
        "subject": "ann@example.com",
        "subject_kind": "email",
        "identifiers": [SUBJECT],
        "pattern_hashes": [],
        "removed": [],
        "redacted": [],
        "state_records_removed": 1,
        "dead_letters_tombstoned": 0,
        "received_at": now,
        "unsearchable_at": now,
        "purged_at": None,
        "verification": {"subject_field_hits": 0, "bm25_hits": 0, "knn_hits": 0, "hybrid_hits": 0, "verified_at": now},
        "status": "unsearchable",
        "error": None,
    }


def test_a_receipt_is_kept_until_the_purge_and_a_new_worker_finds_it() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    receipt = _receipt("r1", now)
    client = ProgressIndex()
    progress = ForgetProgress(client, "progress", "r1")  # type: ignore[arg-type]
    asyncio.run(progress.save(ForgetOutcome([SUBJECT])))
    assert asyncio.run(pending_purges(client, "progress")) == []  # still being handled: not a purge
    asyncio.run(progress.await_purge(receipt))
    (pending,) = asyncio.run(pending_purges(client, "progress"))  # type: ignore[arg-type]
    assert pending["request_id"] == "r1" and pending["status"] == "unsearchable" and pending["unsearchable_at"] == now
    asyncio.run(progress.clear())
    assert asyncio.run(pending_purges(client, "progress")) == []  # type: ignore[arg-type]


def test_resuming_pending_purges_never_stops_the_lane() -> None:
    """A pending purge is scheduled; a failure to read them is logged, not raised into the lane."""

    class Unreadable(ProgressIndex):
        async def search(self, index: str, query: dict[str, Any], **_: Any) -> dict[str, Any]:
            raise ValueError("mapping conflict")

    async def resume(client: ProgressIndex) -> list[dict[str, Any]]:
        async def runtime() -> Any:
            return type("Runtime", (), {"es": client})()

        scheduler = forget_subjects.PurgeScheduler(_lane(), runtime)
        await scheduler.resume()
        pending = list(scheduler.pending)
        if scheduler.task is not None:  # the purge itself waits out its window: not this test's
            scheduler.task.cancel()
        return pending

    client = ProgressIndex()
    progress = ForgetProgress(client, "streams-forget-progress", "r1")  # type: ignore[arg-type]
    asyncio.run(progress.await_purge(_receipt("r1")))
    assert [receipt["request_id"] for receipt in asyncio.run(resume(client))] == ["r1"]
    assert asyncio.run(resume(Unreadable())) == []  # logged, and the lane goes on
