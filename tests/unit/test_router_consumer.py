"""The router's loop (agents/router_consumer.py) with a fake consumer: a batch's offsets are committed
only once the broker has acknowledged its forwards, the next batch is routed meanwhile, a failed
delivery stops the loop before anything after it is committed, and a stop settles the batch in hand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.agents.router_consumer import RouterLoop, offsets_after
from streams.records import RawMessage


def _batch(topic: str, partition: int, offsets: range) -> list[RawMessage]:
    return [RawMessage(topic, partition, offset, b"k", b"v") for offset in offsets]


class FakeSource:
    """Hands out its batches, then empty polls; records what was committed and whether it was closed."""

    def __init__(self, batches: list[list[RawMessage]]) -> None:
        self.batches = list(batches)
        self.commits: list[dict[tuple[str, int], int]] = []
        self.closed = False

    def poll(self) -> list[RawMessage]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))

    def close(self) -> None:
        self.closed = True


class Forwards:
    """Each batch dispatched gets a future of its own, settled by the test."""

    def __init__(self) -> None:
        self.dispatched: list[list[RawMessage]] = []
        self.deliveries: list[asyncio.Future[None]] = []

    async def dispatch(self, messages: Sequence[RawMessage]) -> Awaitable[object]:
        self.dispatched.append(list(messages))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivered)
        return delivered


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop (and its consumer thread) run until `condition` holds, for at most 5 s."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the loop never got there")


def test_the_offset_to_commit_is_one_past_each_partitions_last_message() -> None:
    messages = [*_batch("a", 0, range(3, 6)), *_batch("a", 1, range(0, 2)), *_batch("b", 0, range(7, 8))]
    assert offsets_after(messages) == {("a", 0): 6, ("a", 1): 2, ("b", 0): 8}


async def test_a_batch_is_committed_once_delivered_while_the_next_is_routed() -> None:
    source = FakeSource([_batch("t", 0, range(0, 3)), _batch("t", 0, range(3, 5))])
    forwards = Forwards()
    sizes: list[int] = []
    loop = RouterLoop(lambda: source, forwards.dispatch, sizes.append)
    running = asyncio.ensure_future(loop.run())
    await _until(lambda: len(forwards.dispatched) == 2)  # the second batch routed before the first was delivered
    assert source.commits == []
    forwards.deliveries[0].set_result(None)
    await _until(lambda: len(source.commits) == 1)
    assert source.commits == [{("t", 0): 3}]
    forwards.deliveries[1].set_result(None)
    await _until(lambda: len(source.commits) == 2)
    assert source.commits[-1] == {("t", 0): 5}
    assert sizes[:2] == [3, 2]
    loop.stop()
    await running
    assert source.closed


async def test_a_failed_delivery_stops_the_loop_and_commits_nothing_after_it() -> None:
    source = FakeSource([_batch("t", 0, range(0, 3)), _batch("t", 0, range(3, 5))])
    forwards = Forwards()
    loop = RouterLoop(lambda: source, forwards.dispatch)
    running = asyncio.ensure_future(loop.run())
    await _until(lambda: len(forwards.dispatched) == 2)
    forwards.deliveries[0].set_exception(RuntimeError("broker gone"))
    with pytest.raises(RuntimeError, match="broker gone"):
        await running
    forwards.deliveries[1].set_result(None)
    assert source.commits == []  # neither the failed batch nor the one after it
    assert source.closed


async def test_a_stop_waits_for_the_batch_in_hand_and_commits_it() -> None:
    source = FakeSource([_batch("t", 2, range(10, 14))])
    forwards = Forwards()
    loop = RouterLoop(lambda: source, forwards.dispatch)
    running = asyncio.ensure_future(loop.run())
    await _until(lambda: len(forwards.dispatched) == 1)
    loop.stop()
    await asyncio.sleep(0.05)
    assert not running.done()  # still waiting for the broker
    forwards.deliveries[0].set_result(None)
    await running
    assert source.commits == [{("t", 2): 14}]
    assert loop.committed == {("t", 2): 14}
    assert source.closed


class FencedOnce(FakeSource):
    """A consumer whose first commit finds it fenced, as a static member is after a broker restart."""

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        raise KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True))


async def test_a_fenced_consumer_is_replaced_and_the_new_one_routes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streams.agents.router_consumer.REOPEN_S", 0.0)
    fenced = FencedOnce([_batch("t", 0, range(0, 3)), _batch("t", 0, range(3, 5))])
    replacement = FakeSource([_batch("t", 0, range(0, 5))])  # the uncommitted batches, read again
    opened = iter([fenced, replacement])
    forwards = Forwards()
    loop = RouterLoop(lambda: next(opened), forwards.dispatch)
    running = asyncio.ensure_future(loop.run())
    await _until(lambda: len(forwards.dispatched) == 2)
    forwards.deliveries[0].set_result(None)  # its commit is refused: the consumer is replaced
    await _until(lambda: len(forwards.dispatched) == 3)
    assert fenced.closed and fenced.commits == []
    forwards.deliveries[2].set_result(None)
    loop.stop()
    await running
    assert replacement.commits == [{("t", 0): 5}]


async def test_a_commit_refused_for_a_while_is_covered_by_the_next_one() -> None:
    # The check can fail: only a consumer that failed for good is replaced; this one is kept.
    class RefusingOnce(FakeSource):
        refused = False

        def commit(self, offsets: dict[tuple[str, int], int]) -> None:
            if not self.refused:
                self.refused = True
                raise KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT, "coordinator away"))
            super().commit(offsets)

    source = RefusingOnce([_batch("t", 0, range(0, 3)), _batch("t", 0, range(3, 5))])
    forwards = Forwards()
    opened: list[FakeSource] = []
    loop = RouterLoop(lambda: opened.append(source) or source, forwards.dispatch)
    running = asyncio.ensure_future(loop.run())
    await _until(lambda: len(forwards.dispatched) == 2)
    forwards.deliveries[0].set_result(None)
    forwards.deliveries[1].set_result(None)
    await _until(lambda: bool(source.commits))
    loop.stop()
    await running
    assert source.commits == [{("t", 0): 5}] and len(opened) == 1
