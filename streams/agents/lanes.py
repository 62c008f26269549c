"""Live work first: the backfill lane runs in the time the live lane leaves.

Bulk work (snapshot reads, an incremental snapshot such as `streams verify --repair`'s, a burst of
changes from one table) is routed to its own topic and indexed by its own agent (index_changes.py),
so a live change never queues behind it on a partition. Both lanes share one process, one CPU and
one embedding thread, though, so the backfill lane also yields the CPU: it embeds in slices of a few
texts and, before each slice (and before it plans a batch), waits until no live batch is in flight,
nor a batch the router is routing, nor the router is behind (a live edit read behind an import's rows
waits for them to be routed). A live batch therefore waits for at most one slice of backfill work.

Ordering across the lanes: every write is ordered by the change's version and guarded by the document's
state record (optimistic concurrency), so an older backfill event that lands after a live edit of the
same document is stale, and is counted so. Both lanes write through one gate (agents/write_gate.py),
where each batch holds its documents alone and first reads their state records again
(agents/write_changes.py): a document the other lane wrote meanwhile is planned again, so neither lane
overwrites the other's chunks with text planned from an older state. A document's two topics have the
same key and partition count, so the same worker owns both of its partitions (faust assigns
co-partitioned topics together).

The router tells an import's rows by their source transaction, which it knows to be large only once it
has read enough of it: the first rows of each large transaction, read at the end of a batch, are
forwarded live. Before it embeds a batch the live lane asks the router again (`bulk_to_backfill`), and
forwards the changes of the documents those rows inserted into to the backfill lane, as they came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from streams.observability import metrics

# (key, value) -> an awaitable that completes once the broker has the record on the backfill topic.
SendBackfill = Callable[[bytes, bytes], Awaitable[Awaitable[object]]]


async def bulk_to_backfill(
    batch: Sequence[tuple[bytes, bytes, str | None]],
    now_bulk: Callable[[str], bool],
    send: SendBackfill,
) -> tuple[list[int], int]:
    """Of a live batch's records (key, value, document id or None), forward those of documents the
    router now takes for bulk work (`now_bulk`, asked once per document) to the backfill topic, and
    wait for the broker's acknowledgements. The positions of the records kept, and how many documents
    went."""
    bulk = {document for document in {document for _, _, document in batch if document} if now_bulk(document)}
    if not bulk:
        return list(range(len(batch))), 0
    kept, pending = [], []
    for position, (key, value, document) in enumerate(batch):
        if document in bulk:
            pending.append(await send(key, value))
        else:
            kept.append(position)
    await asyncio.gather(*pending)
    return kept, len(bulk)


# Awaited by the backfill lane before each step of its work: returns once it may go on.
Turn = Callable[[], Awaitable[None]]
# How long a full routing batch holds the backfill lane when no batch follows it.
ROUTER_BEHIND_S = 1.0


class LivePriority:
    """How many live batches are in flight; the backfill lane's `turn` waits until there are none."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._router_caught_up: asyncio.TimerHandle | None = None  # pending while the router is behind

    @property
    def live_in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def live(self) -> AsyncIterator[None]:
        """Around a live batch: the backfill lane yields until it has been written."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def router_behind(self, behind: bool) -> None:
        """Whether the router is behind its topics (its last batch was full: more changes wait to be
        routed). Counted as a live batch in flight until it has caught up: a live edit committed after
        a bulk import's rows is routed after them, and routing is Python on the worker's event loop,
        slowed down by every slice the embedding thread takes beside it. The hold lapses when no batch
        follows within ROUTER_BEHIND_S (a full last batch with nothing after it)."""
        was_behind = self._router_caught_up is not None
        if self._router_caught_up is not None:
            self._router_caught_up.cancel()
            self._router_caught_up = None
        if behind:
            loop = asyncio.get_running_loop()
            self._router_caught_up = loop.call_later(ROUTER_BEHIND_S, self.router_behind, False)
        if behind and not was_behind:
            self._enter()
        elif was_behind and not behind:
            self._leave()

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def turn(self) -> None:
        """The backfill lane's turn: at once when no live batch is in flight, else once none is."""
        if self._idle.is_set():
            return
        started = time.monotonic()
        await self._idle.wait()
        metrics.BACKFILL_YIELDED_SECONDS.inc(time.monotonic() - started)
