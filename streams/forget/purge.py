"""The physical purge: deleted documents linger in Lucene segments until merged away, so a force merge
(`only_expunge_deletes`) follows every request, and a second receipt (`purged`) says when.

One force merge per window covers every request received in it (`PurgeScheduler`); requests that
arrive while a merge runs wait for the next window. A receipt waits for its purge in the request's
progress record (progress.py), so a worker that dies in the window leaves it for the next one to
schedule (`resume`).

The merge runs as an Elasticsearch task that the purge polls: rebuilding the vector graphs of a large
index outlasts any sensible request timeout, and a merge request retried after a client timeout
would queue a second merge behind the first.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.exceptions import GeneralAvailabilityWarning

from streams.errors import IndexingError
from streams.forget.progress import ForgetProgress, pending_purges
from streams.forget.receipt import Receipt
from streams.retrying import retry_transient

log = logging.getLogger(__name__)

SendReceipt = Callable[[Receipt], Awaitable[None]]


async def purge(client: AsyncElasticsearch, alias: str, *, poll_s: float = 2.0) -> None:
    """Expunge deleted documents from every generation's segments (the physical purge): start the
    force merge as a task, then wait for it. Each poll rides out a brief outage; a task that is lost
    (its node restarted) or that reports an error raises, and the caller starts a new merge."""
    started = await client.indices.forcemerge(index=alias, only_expunge_deletes=True, wait_for_completion=False)
    task_id = started["task"]
    while True:
        status = await retry_transient(
            lambda: _task_status(client, task_id), stage="purge", what=f"polling the force merge {task_id}"
        )
        if status.get("completed"):
            break
        await asyncio.sleep(poll_s)
    if status.get("error"):
        raise IndexingError(f"the force merge {task_id} failed: {status['error']}", stage="purge")
    failed = (status.get("response") or {}).get("_shards", {}).get("failed", 0)
    if failed:
        raise IndexingError(f"the force merge {task_id} failed on {failed} shards", stage="purge")


def _task_status(client: AsyncElasticsearch, task_id: str) -> Awaitable[Any]:
    """The task API is marked "technical preview" in the client, which warns at every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneralAvailabilityWarning)
        return client.tasks.get(task_id=task_id)


class PurgeScheduler:
    """Coalesces purges: one force merge per window covers every request received in it.

    `targets` names every generation a deletion reaches (during a migration, the old and the new
    one), read at each attempt: a migration may start or finish while the purge waits."""

    def __init__(
        self,
        client: AsyncElasticsearch,
        targets: Callable[[], str],
        *,
        window_s: float,
        progress_index: str,
        send_receipt: SendReceipt,
    ) -> None:
        self.client, self.targets = client, targets
        self.window_s, self.progress_index, self.send_receipt = window_s, progress_index, send_receipt
        self.pending: list[Receipt] = []
        self.task: asyncio.Task[None] | None = None

    def schedule(self, receipt: Receipt) -> None:
        self.pending.append(receipt)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        """One window after another while receipts wait: a receipt scheduled during a merge is taken
        by the next window, never left behind by a task that is about to end."""
        while self.pending:
            await asyncio.sleep(self.window_s)
            receipts, self.pending = self.pending, []
            try:
                await self._purge(receipts)
            except Exception:  # the task has no one awaiting it: say what happened, keep the next window
                log.exception("the purge of %d deletion requests stopped; their receipts stay pending", len(receipts))

    async def _purge(self, receipts: list[Receipt]) -> None:
        try:  # the cluster may be briefly away: the purge waits for it
            await retry_transient(
                lambda: purge(self.client, self.targets()),
                stage="purge",
                what="the purge force merge",
                permanent_attempts=5,
            )
        except Exception as exc:  # not transient, five times: the receipts stay "unsearchable", purged_at null
            log.error("purge for %d deletion requests failed for good: %s", len(receipts), exc)
            return
        purged_at = datetime.now(UTC)
        for receipt in receipts:
            await self.send_receipt(receipt.purged(purged_at))
            await ForgetProgress(self.client, self.progress_index, receipt.request_id).clear()
        log.info("purged deleted documents for %d deletion requests", len(receipts))

    async def resume(self) -> None:
        """Schedule the purges a worker that died left pending (their receipts saved, progress.py).
        Runs beside the lane, never in its way: an outage is waited out, any other failure is logged."""
        try:
            receipts = await retry_transient(
                lambda: pending_purges(self.client, self.progress_index),
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
