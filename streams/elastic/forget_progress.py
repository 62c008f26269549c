"""What a deletion request has removed and redacted so far, kept until its receipt is on Kafka.

A request is handled again when an attempt fails late (its verification, a timeout) or when the
worker dies before the request's offset moves. The next attempt finds gone what the last one
deleted, so a receipt built from that attempt alone would certify "nothing removed". Each step of
`forget_subject.forget` notes what it is about to delete or rewrite and saves the note here
*before* writing; the next attempt (in this worker or another) starts from the saved note, and the
record is deleted once the receipt is published.

One small record per request in its own index (`settings.forget_progress_index`, not behind the
chunks alias): chunk and document ids per index generation and source, never an identifier or a
pattern (those are recomputed from the request at each attempt).
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, BadRequestError, Elasticsearch, NotFoundError

from streams.elastic.forget_subject import ForgetOutcome

MAPPING: dict[str, Any] = {"dynamic": False, "properties": {"request_id": {"type": "keyword"}}}
_SETS = ("removed", "removed_documents", "redacted", "redacted_documents")


def ensure_progress_index(client: Elasticsearch, index: str) -> None:
    if client.indices.exists(index=index):
        return
    try:
        client.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0}, mappings=MAPPING)
    except BadRequestError as exc:  # workers starting together: another one created it a moment ago
        if exc.error != "resource_already_exists_exception":
            raise


def to_json(request_id: str, outcome: ForgetOutcome) -> dict[str, Any]:
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for name in _SETS:
        for (index, source), ids in getattr(outcome, name).items():
            entries.setdefault((index, source), {"index": index, "source": source})[name] = sorted(ids)
    return {"request_id": request_id, "state_records": outcome.state_records, "entries": list(entries.values())}


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

    async def clear(self) -> None:
        await self.client.options(ignore_status=404).delete(index=self.index, id=self.request_id)
