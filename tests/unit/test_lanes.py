"""The live and backfill lanes inside one worker (agents/lanes.py): the backfill lane yields to live
batches between slices of its work, both may write at once, and bulk work is never live freshness."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.agents.lanes import LivePriority, bulk_to_backfill
from streams.agents.process_changes import ChangeProcessor
from streams.agents.write_changes import (
    ChangeWriter,
    GenerationsWriter,
    WriteResult,
    length_sorted_slices,
    split_by_document,
)
from streams.errors import RetryableError
from streams.observability.freshness import FreshnessWindow
from streams.records import PartChange, RawMessage, RoutedChange
from streams.settings import Settings
from streams.topics import consumed_topics, owned_topics, topic_partition_count
from tests.unit.test_freshness_window import _committed_ago
from tests.unit.test_plan_batch import page


def test_the_backfill_lane_goes_on_at_once_when_no_live_batch_is_in_flight() -> None:
    async def scenario() -> None:
        priority = LivePriority()
        await asyncio.wait_for(priority.turn(), timeout=1)

    asyncio.run(scenario())


def test_the_backfill_lane_waits_while_a_live_batch_is_in_flight() -> None:
    async def scenario() -> list[str]:
        priority = LivePriority()
        events: list[str] = []

        async def live_batch() -> None:
            async with priority.live():
                await asyncio.sleep(0.05)
                events.append("live written")

        async def backfill_step() -> None:
            await priority.turn()
            events.append("backfill step")

        live = asyncio.create_task(live_batch())
        await asyncio.sleep(0)  # the live batch is in flight
        assert priority.live_in_flight == 1
        await asyncio.gather(backfill_step(), live)
        assert priority.live_in_flight == 0
        return events

    assert asyncio.run(scenario()) == ["live written", "backfill step"]


def test_the_backfill_lane_waits_while_the_router_is_behind() -> None:
    """A full routing batch says more changes wait to be routed (a live edit may be among them): the
    backfill lane goes on once a batch comes that is not full."""

    async def scenario() -> None:
        priority = LivePriority()
        priority.router_behind(True)
        priority.router_behind(True)  # a second full batch: still one hold
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(priority.turn(), timeout=0.05)
        async with priority.live():
            assert priority.live_in_flight == 2
        priority.router_behind(False)
        await asyncio.wait_for(priority.turn(), timeout=1)
        assert priority.live_in_flight == 0

    asyncio.run(scenario())


def test_the_router_hold_lapses_when_no_batch_follows_a_full_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full last batch, then nothing: the backfill lane must not wait for a change that never comes."""
    monkeypatch.setattr("streams.agents.lanes.ROUTER_BEHIND_S", 0.05)

    async def scenario() -> None:
        priority = LivePriority()
        priority.router_behind(True)
        assert priority.live_in_flight == 1
        await asyncio.wait_for(priority.turn(), timeout=1)
        assert priority.live_in_flight == 0

    asyncio.run(scenario())


class SlowEmbedder:
    """One embedding thread: each call takes its time, and the calls are logged in order."""

    def __init__(self, calls: list[tuple[str, int]], seconds: float = 0.01) -> None:
        self.calls, self.seconds = calls, seconds
        self.busy = asyncio.Lock()

    async def encode_async(self, texts: list[str]) -> list[list[float]]:
        async with self.busy:
            await asyncio.sleep(self.seconds)
            self.calls.append((texts[0].split()[0], len(texts)))
            return [[float(len(text))] for text in texts]


def _writer(embedder: SlowEmbedder, slice_texts: int = 4) -> ChangeWriter:
    return ChangeWriter(None, embedder, None, None, slice_texts=slice_texts)  # type: ignore[arg-type]


def test_a_backfill_batch_embeds_in_slices_and_a_live_batch_goes_between_them() -> None:
    async def scenario() -> tuple[list[tuple[str, int]], list[list[float]]]:
        calls: list[tuple[str, int]] = []
        embedder = SlowEmbedder(calls)
        priority = LivePriority()
        backfill = _writer(embedder)
        bulk = [f"bulk text {n}" for n in range(12)]
        task = asyncio.create_task(backfill._encode(bulk, priority.turn))
        await asyncio.sleep(0.005)  # the first slice is being embedded

        async with priority.live():
            await _writer(embedder)._encode(["live edit"], None)
        return calls, await task

    calls, vectors = asyncio.run(scenario())
    # The live text waited for one slice of 4, not for the 12 texts of the batch.
    assert calls == [("bulk", 4), ("live", 1), ("bulk", 4), ("bulk", 4)]
    assert vectors == [[float(len(f"bulk text {n}"))] for n in range(12)]  # in order, none lost


def test_backfill_slices_go_longest_first_and_pack_short_texts_within_the_padded_budget() -> None:
    texts = ["x" * 100, "y" * 10, "x" * 100, "y" * 10, "z" * 50] + ["y" * 10] * 6
    slices = length_sorted_slices(texts, slice_texts=2)
    assert sorted(i for picked in slices for i in picked) == list(range(len(texts)))  # each text once
    lengths = [[len(texts[i]) for i in picked] for picked in slices]
    # Two full-length texts are the budget (2 x 100 padded characters): the 50 goes with two more of its
    # size at most, and short texts fill a slice up to the cap of 4 x 2 texts, not 2.
    assert lengths == [[100, 100], [50, 10, 10, 10], [10, 10, 10, 10, 10]]
    assert all(len(picked) * len(texts[picked[0]]) <= 200 for picked in slices)


def test_backfill_vectors_come_back_in_the_batchs_order_whatever_the_slices() -> None:
    calls: list[tuple[str, int]] = []
    texts = [f"bulk {'word ' * n}" for n in (1, 9, 3, 9, 1)]
    vectors = asyncio.run(_writer(SlowEmbedder(calls), slice_texts=2)._encode(texts, LivePriority().turn))
    assert vectors == [[float(len(text))] for text in texts]
    assert [count for _, count in calls] == [2, 3]  # the two long texts, then the three short ones


def _of(document: str, version: int) -> PartChange:
    return dataclasses.replace(page(version), document_id=document)


def test_a_backfill_batch_splits_into_halves_with_no_document_in_common() -> None:
    changes = [_of("a", 1), _of("b", 1), _of("a", 2), _of("c", 1), _of("d", 1), _of("a", 3)]
    halves = split_by_document(changes, 2)
    assert len(halves) == 2
    documents = [{change.document_id for change in half} for half in halves]
    assert documents[0].isdisjoint(documents[1]) and set.union(*documents) == {"a", "b", "c", "d"}
    # Each half keeps delivery order, and the three changes of `a` weigh against the other three.
    assert sorted(len(half) for half in halves) == [3, 3]
    for half in halves:
        assert half == [change for change in changes if change in half]
    assert split_by_document([_of("a", 1), _of("a", 2)], 2) == [[_of("a", 1), _of("a", 2)]]
    assert split_by_document([], 2) == []


class Halves(ChangeWriter):
    """A writer whose halves are logged: one fails after a while, when `fail` names its document."""

    def __init__(self, fail: str | None = None) -> None:
        super().__init__(None, None, None, None)  # type: ignore[arg-type]
        self.fail, self.log = fail, []  # type: list[str]

    async def _write(self, changes: list[PartChange], turn: object) -> WriteResult:
        document = changes[0].document_id
        self.log.append(f"{document} started")
        try:
            await asyncio.sleep(0.01 if document == self.fail else 0.2)
        except asyncio.CancelledError:
            self.log.append(f"{document} stopped")
            raise
        if document == self.fail:
            raise RetryableError("the index refused for now", stage="index")
        self.log.append(f"{document} written")
        return WriteResult(applied=list(changes), searchable_at=datetime(2026, 1, 1, second=len(document), tzinfo=UTC))


def test_a_backfill_batch_s_halves_run_side_by_side_and_merge() -> None:
    writer = Halves()
    result = asyncio.run(writer.write([_of("a", 1), _of("bb", 1)], LivePriority().turn))
    assert writer.log == ["a started", "bb started", "a written", "bb written"]  # the second did not wait
    assert sorted(change.document_id for change in result.applied) == ["a", "bb"]
    assert result.searchable_at == datetime(2026, 1, 1, second=2, tzinfo=UTC)  # the later half's


def test_a_failing_half_stops_the_other_so_no_write_outlives_the_batch_s_retry() -> None:
    writer = Halves(fail="a")
    with pytest.raises(RetryableError):
        asyncio.run(writer.write([_of("a", 1), _of("b", 1)], LivePriority().turn))
    assert writer.log == ["a started", "b started", "b stopped"]


def test_a_live_batch_is_written_whole() -> None:
    writer = Halves()
    asyncio.run(writer.write([_of("a", 1), _of("b", 1)]))
    assert writer.log == ["a started", "a written"]  # one call with both documents


def test_a_live_batch_without_a_turn_embeds_at_once() -> None:
    calls: list[tuple[str, int]] = []
    vectors = asyncio.run(_writer(SlowEmbedder(calls))._encode([f"live {n}" for n in range(9)], None))
    assert calls == [("live", 9)] and len(vectors) == 9


class Recording:
    def __init__(self, name: str, log: list[str], seconds: float) -> None:
        self.name, self.log, self.seconds = name, log, seconds
        self.turns: list[object] = []

    async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
        self.turns.append(turn)
        self.log.append(f"{self.name} started")
        if callable(turn):
            await turn()
        await asyncio.sleep(self.seconds)
        self.log.append(f"{self.name} written")
        return WriteResult(applied=list(changes))


def test_a_live_batch_is_written_while_a_backfill_batch_is_still_in_flight() -> None:
    async def scenario() -> list[str]:
        log: list[str] = []
        serving = Recording("v1", log, 0.0)
        writer = GenerationsWriter({"v1": serving}, "v1")  # type: ignore[dict-item]

        async def slow_turn() -> None:
            await asyncio.sleep(0.05)

        backfill = asyncio.create_task(writer.write([page(1)], slow_turn))
        await asyncio.sleep(0)
        live = await writer.write([page(2)])
        assert live.applied == [page(2)]
        log.append("live done")
        await backfill
        assert serving.turns == [slow_turn, None]  # each lane's batch carries its own turn
        return log

    # The backfill batch waits for its turn; the live batch does not wait for it.
    assert asyncio.run(scenario()) == ["v1 started", "v1 started", "v1 written", "live done", "v1 written"]


class HeldEmbedder:
    """The model, holding any text that contains `held` until `release` is set."""

    def __init__(self, held: str) -> None:
        self.held, self.release = held, asyncio.Event()
        self.holding = asyncio.Event()

    async def encode_async(self, texts: list[str]) -> list[list[float]]:
        if any(self.held in text for text in texts):
            self.holding.set()
            await self.release.wait()
        return [[0.5, 0.5] for _ in texts]


def test_a_backfill_batch_planned_before_a_live_edit_does_not_overwrite_its_chunks() -> None:
    """The backfill lane plans an edit from the stored state and embeds it; meanwhile the live lane
    writes a newer edit of the same document. The backfill batch must find the state moved before it
    writes a chunk: its chunk ids are the live edit's, and its text is older."""
    from streams.agents.suppression import SuppressionLedger
    from streams.elastic.document_store import DocumentStore
    from streams.records import chunk_id
    from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
    from tests.unit.test_plan_batch import PAGE, chunker, revision

    fake = FakeElasticsearch()

    async def scenario() -> WriteResult:
        async with serving(fake) as es:
            embedder = HeldEmbedder("zqolder")
            writer = ChangeWriter(DocumentStore(es, "chunks"), embedder, chunker, SuppressionLedger(b"k" * 32))  # type: ignore[arg-type]
            await writer.write([page(1), revision(10, 100, "zqfirst text", "ann@example.com")])
            backfill = asyncio.create_task(writer.write([revision(11, 100, "zqolder text", "ann@example.com")]))
            await asyncio.wait_for(embedder.holding.wait(), timeout=5)
            live = await writer.write([revision(12, 100, "zqnewest text", "ann@example.com")])
            assert [change.version for change in live.applied] == [12]
            embedder.release.set()
            return await asyncio.wait_for(backfill, timeout=5)

    backfill = asyncio.run(scenario())
    assert [change.version for change in backfill.stale] == [11] and backfill.applied == []
    chunk = fake.source("chunks", chunk_id(PAGE, "revision", 0))
    assert chunk is not None and chunk["text"] == "zqnewest text"


class CountingEmbedder(HeldEmbedder):
    """HeldEmbedder that also logs every text it is asked to embed."""

    def __init__(self, held: str) -> None:
        super().__init__(held)
        self.asked: list[str] = []

    async def encode_async(self, texts: list[str]) -> list[list[float]]:
        self.asked += texts
        return await super().encode_async(texts)


def test_a_batch_planned_again_after_a_deletion_request_embeds_no_text_twice() -> None:
    """A deletion request that lands while a batch embeds makes the batch plan again (agents/suppression.py).
    The texts it had embedded are kept: a long backfill batch is not embedded anew for each request."""
    from streams.agents.suppression import SuppressionLedger
    from streams.elastic.document_store import DocumentStore
    from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
    from tests.unit.test_plan_batch import chunker, revision

    fake = FakeElasticsearch()
    ledger = SuppressionLedger(b"k" * 32)

    async def scenario() -> tuple[WriteResult, list[str]]:
        async with serving(fake) as es:
            embedder = CountingEmbedder("zqheld")
            writer = ChangeWriter(DocumentStore(es, "chunks"), embedder, chunker, ledger)  # type: ignore[arg-type]
            text = "zqheld first paragraph\n\nsecond paragraph"
            task = asyncio.create_task(writer.write([page(1), revision(10, 100, text, "ann@example.com")]))
            await asyncio.wait_for(embedder.holding.wait(), timeout=5)
            ledger.add_identifiers(["email:someone.else@example.com"])  # a request for somebody else
            embedder.release.set()
            return await asyncio.wait_for(task, timeout=5), embedder.asked

    result, asked = asyncio.run(scenario())
    assert [change.version for change in result.applied] == [1, 10]
    assert sorted(asked) == ["second paragraph", "zqheld first paragraph"]  # each once, though planned twice
    assert result.chunks_embedded == 2


def test_a_batch_planned_again_after_every_round_is_written_by_a_last_round_that_holds_the_gate() -> None:
    """Deletion requests land one after another while a large batch plans: each makes the batch plan
    again. After its rounds run out the batch was dead-lettered, lost to the index; the last round now
    holds the gate for its documents from load to write, and the next request waits for it."""
    from streams.agents.suppression import SuppressionLedger
    from streams.agents.write_changes import MAX_CONFLICT_ROUNDS
    from streams.elastic.document_store import DocumentStore
    from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
    from tests.unit.test_plan_batch import chunker, revision

    fake = FakeElasticsearch()
    ledger = SuppressionLedger(b"k" * 32)
    requests: list[asyncio.Task[None]] = []

    async def request(n: int) -> None:  # as the deletion lane adds its entries: holding the gate whole
        async with ledger.gate.exclusive():
            ledger.add_identifiers([f"email:someone.{n}@example.com"])

    async def scenario() -> WriteResult:
        async with serving(fake) as es:
            store = DocumentStore(es, "chunks")
            load_vectors = store.load_vectors

            async def a_request_lands_after_planning(ids: list[str]) -> Any:
                requests.append(asyncio.create_task(request(len(requests))))
                await asyncio.sleep(0.01)  # the request gets its turn at the gate before the batch asks
                return await load_vectors(ids)

            store.load_vectors = a_request_lands_after_planning  # type: ignore[method-assign]
            writer = ChangeWriter(store, HeldEmbedder("never"), chunker, ledger)  # type: ignore[arg-type]
            result = await writer.write([page(1), revision(10, 100, "zqwritten at last", "ann@example.com")])
            await asyncio.wait_for(asyncio.gather(*requests), timeout=5)
            return result

    result = asyncio.run(scenario())
    assert result.failed == [] and [change.version for change in result.applied] == [1, 10]
    assert len(requests) == MAX_CONFLICT_ROUNDS  # planned again after each of the first rounds' requests


def test_replacing_the_generations_waits_for_both_lanes_batches() -> None:
    async def scenario() -> list[str]:
        log: list[str] = []
        writer = GenerationsWriter({"v1": Recording("old", log, 0.05)}, "v1")  # type: ignore[dict-item]
        backfill = asyncio.create_task(writer.write([page(1)], LivePriority().turn))
        live = asyncio.create_task(writer.write([page(2)]))
        await asyncio.sleep(0.01)
        await writer.replace({"v1": Recording("new", log, 0.0)}, "v1")  # type: ignore[dict-item]
        log.append("replaced")
        await asyncio.gather(backfill, live)
        await writer.write([page(3)])
        return log

    log = asyncio.run(scenario())
    assert log[:5] == ["old started", "old started", "old written", "old written", "replaced"]
    assert log[5:] == ["new started", "new written"]


def _records(changes: list[PartChange]) -> list[RoutedChange]:
    return [RoutedChange(RawMessage("t", 0, n, None, None), c.source, c.commit_ts, c) for n, c in enumerate(changes)]


class Applying:
    async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
        return WriteResult(applied=list(changes), searchable_at=datetime.now(UTC))


async def _no_dead_letters(origin: object, record: object) -> None:
    raise AssertionError(record)


def _phases(window: FreshnessWindow, source: str) -> tuple[int, int]:
    figures = {f.source: f for f in window.recent()}[source]
    return figures.events, figures.snapshot_events


def test_the_backfill_lane_s_changes_are_reported_apart_from_live_freshness() -> None:
    window = FreshnessWindow(("unit-lanes",), started_at=datetime.now(UTC) - timedelta(minutes=1))
    change = _committed_ago("unit-lanes", 1)  # a change committed while the worker ran: live by itself
    live = ChangeProcessor(Applying(), _no_dead_letters, window)  # type: ignore[arg-type]
    backfill = ChangeProcessor(Applying(), _no_dead_letters, window, turn=LivePriority().turn)  # type: ignore[arg-type]
    asyncio.run(live.process(_records([change])))
    assert _phases(window, "unit-lanes") == (1, 0)
    asyncio.run(backfill.process(_records([change, change])))
    assert _phases(window, "unit-lanes") == (1, 2)


def test_a_source_s_oldest_unindexed_change_counts_in_either_lane() -> None:
    window = FreshnessWindow(("unit-lanes-age",))
    window.unindexed([_committed_ago("unit-lanes-age", 300)], "backfill")
    window.unindexed([_committed_ago("unit-lanes-age", 5)], "live")
    window.indexed(["unit-lanes-age"], "live")  # the live batch is written; the bulk one is not
    assert window.oldest_unindexed_age_s("unit-lanes-age") > 200
    window.indexed(["unit-lanes-age"], "backfill")
    assert window.oldest_unindexed_age_s("unit-lanes-age") == 0


def test_the_backfill_topic_is_read_kept_and_partitioned_by_document(monkeypatch: Any) -> None:
    settings = Settings()
    monkeypatch.setattr("streams.topics.change_topics", lambda mappings, settings: [])
    monkeypatch.setattr("streams.topics.heartbeat_topics", lambda mappings, settings: [])
    assert settings.backfill_topic in consumed_topics(None, settings)  # type: ignore[arg-type]
    assert settings.backfill_topic in owned_topics(settings)
    assert topic_partition_count(settings, settings.backfill_topic) == settings.document_partitions


def test_freshness_names_the_backfill_lane_s_backlog_and_time_to_drain() -> None:
    from streams.observability.capture_health import LagHistory
    from streams.observability.commands import backfill_line

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    history = LagHistory(clock=lambda: now[0])
    history.observe(5_000)
    now[0] += timedelta(seconds=10)
    history.observe(4_000)  # 100 events a second
    lag = history.current()
    assert lag is not None
    assert backfill_line(lag.to_json()) == "backfill lane: 4000 events queued, draining 100/s, about 40 s to go"
    assert backfill_line({"events": 0}) is None and backfill_line(None) is None


def test_a_batch_says_where_its_time_went_and_a_wait_for_the_gate_is_counted_as_such() -> None:
    """Every stage of a round is timed; a batch that waits while a deletion request holds the gate
    counts that wait under `gate`, not under the bulk write or the embedding."""
    from streams.agents.suppression import SuppressionLedger
    from streams.agents.write_changes import STAGES
    from streams.elastic.document_store import DocumentStore
    from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
    from tests.unit.test_plan_batch import chunker, revision

    fake = FakeElasticsearch()
    ledger = SuppressionLedger(b"k" * 32)

    async def scenario() -> WriteResult:
        async with serving(fake) as es:
            embedder = HeldEmbedder("zqtimed")
            writer = ChangeWriter(DocumentStore(es, "chunks"), embedder, chunker, ledger)  # type: ignore[arg-type]
            task = asyncio.create_task(writer.write([page(1), revision(10, 100, "zqtimed text", "ann@example.com")]))
            await asyncio.wait_for(embedder.holding.wait(), timeout=5)
            # Held whole, as a deletion request holds it, from before the batch reaches it.
            async with ledger.gate.exclusive():
                embedder.release.set()
                await asyncio.sleep(0.3)
            return await asyncio.wait_for(task, timeout=5)

    result = asyncio.run(scenario())
    assert list(result.phases.seconds) == list(STAGES)  # in the order a round runs them
    assert result.phases.seconds["gate"] >= 0.2  # the batch could not pass before the gate was released
    assert result.phases.seconds["bulk"] < result.phases.seconds["gate"]
    assert str(result.phases).startswith("load ")


def test_merged_results_sum_their_stages() -> None:
    from streams.observability.phases import Phases

    first = WriteResult(phases=Phases({"embed": 1.0, "bulk": 0.5}))
    first.merge(WriteResult(phases=Phases({"embed": 2.0, "gate": 0.25})))
    assert first.phases.seconds == {"embed": 3.0, "bulk": 0.5, "gate": 0.25}
    assert str(first.phases) == "embed 3.000s, bulk 0.500s, gate 0.250s"
    assert str(WriteResult().phases) == ""


def test_a_live_batch_embeds_with_its_own_copy_of_the_model_while_the_backfill_copy_is_busy() -> None:
    """The indexing copy's one thread is held by backfill work; a live batch (no turn) embeds with the
    live lane's copy and is written meanwhile. A backfill batch never uses that copy."""
    from streams.agents.suppression import SuppressionLedger
    from streams.elastic.document_store import DocumentStore
    from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
    from tests.unit.test_plan_batch import chunker, revision

    fake = FakeElasticsearch()

    async def scenario() -> tuple[WriteResult, list[str], list[str]]:
        async with serving(fake) as es:
            busy, own = CountingEmbedder("zq"), CountingEmbedder("never held")
            writer = ChangeWriter(
                DocumentStore(es, "chunks"),
                busy,  # type: ignore[arg-type]
                chunker,
                SuppressionLedger(b"k" * 32),
                live=own,  # type: ignore[arg-type]
            )
            priority = LivePriority()
            backfill = asyncio.create_task(writer._encode(["zqbackfill slice"], priority.turn))
            await asyncio.wait_for(busy.holding.wait(), timeout=5)  # the indexing copy is busy
            live = await asyncio.wait_for(
                writer.write([page(1), revision(10, 100, "zqlive text", "ann@example.com")]), timeout=5
            )
            busy.release.set()
            await asyncio.wait_for(backfill, timeout=5)
            return live, busy.asked, own.asked

    live, busy_asked, own_asked = asyncio.run(scenario())
    assert [change.version for change in live.applied] == [1, 10]
    assert busy_asked == ["zqbackfill slice"]  # only the backfill's text
    assert own_asked and all("zqbackfill" not in text for text in own_asked)


def test_a_batch_writes_its_bulk_requests_while_it_holds_the_gate() -> None:
    """A deletion request that asks for the gate while a batch's bulk request is in flight waits until
    the batch has written: the bulk requests are inside the gate, not after it."""
    from streams.agents.suppression import SuppressionLedger
    from streams.elastic.document_store import DocumentStore
    from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
    from tests.unit.test_plan_batch import chunker, revision

    fake = FakeElasticsearch()
    ledger = SuppressionLedger(b"k" * 32)
    order: list[str] = []
    requests: list[asyncio.Task[None]] = []

    async def request() -> None:
        async with ledger.gate.exclusive():
            order.append("request holds the gate")

    def on_request(endpoint: str) -> None:
        if endpoint == "_bulk" and not requests:  # the batch's first bulk request has arrived
            requests.append(asyncio.get_running_loop().create_task(request()))

    async def scenario() -> None:
        async with serving(fake) as es:
            fake.observe = on_request
            writer = ChangeWriter(DocumentStore(es, "chunks"), HeldEmbedder("never"), chunker, ledger)  # type: ignore[arg-type]
            await writer.write([page(1), revision(10, 100, "zqgated text", "ann@example.com")])
            order.append("batch written")
            await asyncio.wait_for(requests[0], timeout=5)

    asyncio.run(scenario())
    assert order == ["batch written", "request holds the gate"]


async def test_a_live_batch_forwards_the_documents_the_router_now_takes_for_bulk_work() -> None:
    """An import's first rows came live: their documents' records go to the backfill topic, as they came
    and in their order, acknowledged before the batch goes on; the rest stay, and each document is asked
    about once."""
    batch = [
        (b"tickets/ticket/100", b"root", "tickets/ticket/100"),
        (b"tickets/ticket/7", b"edit", "tickets/ticket/7"),
        (b"heartbeat:tickets", b"beat", None),
        (b"tickets/ticket/100", b"comment", "tickets/ticket/100"),
    ]
    asked: list[str] = []
    sent: list[tuple[bytes, bytes]] = []
    acknowledged: list[bytes] = []

    def now_bulk(document: str) -> bool:
        asked.append(document)
        return document == "tickets/ticket/100"

    async def send(key: bytes, value: bytes) -> Any:
        sent.append((key, value))

        async def ack() -> None:
            acknowledged.append(value)

        return ack()

    kept, documents = await bulk_to_backfill(batch, now_bulk, send)
    assert kept == [1, 2] and documents == 1
    assert sent == [(b"tickets/ticket/100", b"root"), (b"tickets/ticket/100", b"comment")]
    assert sorted(acknowledged) == [b"comment", b"root"]
    assert sorted(asked) == ["tickets/ticket/100", "tickets/ticket/7"]


async def test_a_live_batch_the_router_still_takes_for_live_work_is_kept_whole() -> None:
    batch = [(b"tickets/ticket/7", b"edit", "tickets/ticket/7")]

    async def send(key: bytes, value: bytes) -> Any:
        raise AssertionError("nothing is bulk work")

    assert await bulk_to_backfill(batch, lambda document: False, send) == ([0], 0)
