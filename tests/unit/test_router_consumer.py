"""The router's loop (agents/router_consumer.py) with a fake consumer: a batch's offsets are committed
only once the broker has acknowledged its forwards, the next batch is routed meanwhile, a failed
delivery stops the loop before anything after it is committed, and a stop settles the batch in hand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest

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
