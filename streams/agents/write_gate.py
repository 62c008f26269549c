"""The write gate: who may write the index now.

Batches of both lanes write side by side (`batch`), each holding its own documents alone: a live
batch's bulk write never waits for a backfill batch's unless the two share a document, and then the
second reads the document's state record again once the first has written (agents/write_changes.py).
A deletion request, and ledger entries applied from the topic, take the gate whole (`exclusive`):
they wait for every batch in flight, and keep new batches out until they are done, so no batch
planned before them lands after them (agents/suppression.py, forget/lane.py). A request that waits
for the gate goes before batches that come after it, so that a stream of batches cannot hold it back.

Every change of the gate's state is made with no await between its check and its update (one event
loop), and wakes every waiter to check again; waking is a plain `Event.set`, which a cancellation
cannot interrupt half done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager


class WriteGate:
    def __init__(self) -> None:
        self._batches = 0  # batches writing now
        self._writing: set[str] = set()  # their documents
        self._whole = False  # held whole now
        self._asking = 0  # requests waiting to hold it whole
        self._changed = asyncio.Event()  # set (and replaced) at every change of the above

    @asynccontextmanager
    async def batch(self, documents: Iterable[str]) -> AsyncIterator[None]:
        """Around one batch's check of its state records and its bulk write: beside other batches,
        after any that writes one of `documents`, never while the gate is held whole or asked for."""
        wanted = set(documents)
        await self._until(lambda: not self._whole and not self._asking and not wanted & self._writing)
        self._batches += 1
        self._writing |= wanted
        try:
            yield
        finally:
            self._batches -= 1
            self._writing -= wanted
            self._change()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The whole gate: once every batch in flight has written, and before any batch that asks after."""
        self._asking += 1
        try:
            await self._until(lambda: not self._whole and not self._batches)
        finally:
            self._asking -= 1
            self._change()
        self._whole = True
        try:
            yield
        finally:
            self._whole = False
            self._change()

    def locked(self) -> bool:
        """Whether the gate is held whole now."""
        return self._whole

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            await self._changed.wait()

    def _change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
