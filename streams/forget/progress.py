"""What a deletion request has removed and redacted so far, kept until its receipt is on Kafka; then
its receipt, kept until the purge that expunges the deleted documents has run.

A request is handled again when an attempt fails late (its verification, a timeout) or when the
worker dies before the request's offset moves. The next attempt finds gone what the last one
deleted, so a receipt built from that attempt alone would certify "nothing removed". Each step of
`erase.erase` notes what it is about to delete or rewrite and saves the note here
*before* writing; the next attempt (in this worker or another) starts from the saved note.

Once the receipt is published the record holds the receipt instead (`awaiting_purge`): the purge
runs up to `purge_window_s` later, and a worker that dies in between would lose it, so a starting
worker schedules every purge still pending (`pending_purges`). The record is deleted after the purge
and its "purged" receipt.

One small record per request in its own index (`settings.forget_progress_index`, not behind the
chunks alias): while the request is handled, chunk and document ids per index generation and source,
never an identifier or a pattern (those are recomputed from the request at each attempt); while the
purge is pending, the receipt (which names the subject, as the receipts topic does).
"""

from __future__ import annotations

import base64
from typing import Any

from elasticsearch import AsyncElasticsearch, Elasticsearch, NotFoundError

from streams import avro
from streams.elastic.record_index import ensure_record_index
from streams.forget.outcome import ForgetOutcome
from streams.forget.receipt import Receipt

AWAITING_PURGE = "awaiting_purge"
MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {"request_id": {"type": "keyword"}, "state": {"type": "keyword"}},
}
_SETS = ("removed", "removed_documents", "redacted", "redacted_documents")


def ensure_progress_index(client: Elasticsearch, index: str) -> None:
    ensure_record_index(client, index, MAPPING)


def to_json(request_id: str, outcome: ForgetOutcome) -> dict[str, Any]:
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for name in _SETS:
        for (index, source), ids in getattr(outcome, name).items():
            entries.setdefault((index, source), {"index": index, "source": source})[name] = sorted(ids)
    return {
        "request_id": request_id,
        "state": "forgetting",
        "state_records": outcome.state_records,
        "entries": list(entries.values()),
    }


def from_json(body: dict[str, Any], identifiers: list[str]) -> ForgetOutcome:
    outcome = ForgetOutcome(identifiers, state_records=int(body.get("state_records", 0)))
    for entry in body.get("entries", []):
        key = (entry["index"], entry["source"])
        for name in _SETS:
            if entry.get(name):
                getattr(outcome, name)[key] = set(entry[name])
    return outcome


class ForgetProgress:
    """The saved outcome of one request: `load` at the start of an attempt, `save` before each write,
    `clear` after the receipt."""

    def __init__(self, client: AsyncElasticsearch, index: str, request_id: str) -> None:
        self.client, self.index, self.request_id = client, index, request_id

    async def load(self, into: ForgetOutcome) -> ForgetOutcome:
        """`into` with what earlier attempts (any worker's) saved added."""
        try:
            response = await self.client.get(index=self.index, id=self.request_id)
        except NotFoundError:
            return into
        saved = from_json(response["_source"], into.identifiers)
        for name in _SETS:
            mine, theirs = getattr(into, name), getattr(saved, name)
            for key, ids in theirs.items():
                mine.setdefault(key, set()).update(ids)
        into.state_records = max(into.state_records, saved.state_records)
        return into

    async def save(self, outcome: ForgetOutcome) -> None:
        await self.client.index(index=self.index, id=self.request_id, document=to_json(self.request_id, outcome))

    async def await_purge(self, receipt: Receipt) -> None:
        """The receipt is out: keep it (not the note) until the purge has run and said so."""
        encoded = base64.b64encode(avro.encode("deletion_receipt", receipt.to_dict())).decode()
        body = {"request_id": self.request_id, "state": AWAITING_PURGE, "receipt": encoded}
        await self.client.index(index=self.index, id=self.request_id, document=body)

    async def clear(self) -> None:
        await self.client.options(ignore_status=404).delete(index=self.index, id=self.request_id)


async def pending_purges(client: AsyncElasticsearch, index: str, size: int = 10_000) -> list[Receipt]:
    """The receipts of every request whose purge has not run (a worker died in the window)."""
    await client.indices.refresh(index=index)
    response = await client.search(index=index, size=size, query={"term": {"state": AWAITING_PURGE}})
    return [
        Receipt.from_dict(avro.decode("deletion_receipt", base64.b64decode(hit["_source"]["receipt"])))
        for hit in response["hits"]["hits"]
    ]
