"""The indexing lane's bulk write, through the real client and bulk helper against an in-memory
Elasticsearch: a document's state record is written only once every one of its chunks landed."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.elastic.bulk import BulkLimits
from streams.elastic.document_store import DocumentStore
from streams.pipeline.plan_batch import Operation, read_bulk_items
from tests.unit.fake_elasticsearch import FakeElasticsearch, serving

NO_WAIT = BulkLimits(retries=1, backoff_s=0.0, max_backoff_s=0.0)


def _document(document_id: str) -> list[Operation]:
    chunk = {"_op_type": "index", "_id": f"{document_id}#root#0", "_source": {"kind": "chunk", "text": "hello"}}
    state = {"_op_type": "create", "_id": f"state:{document_id}", "_source": {"kind": "state", "version": 2}}
    return [Operation(document_id, chunk), Operation(document_id, state)]


def _write(fake: FakeElasticsearch, operations: list[Operation]) -> Any:
    async def scenario() -> Any:
        async with serving(fake) as es:
            items = await DocumentStore(es, "v1", limits=NO_WAIT).bulk(operations)
            return read_bulk_items(operations, items)

    return asyncio.run(scenario())


def test_a_state_record_waits_for_its_chunks() -> None:
    fake = FakeElasticsearch()
    # The write pool stays full for one document's chunk, longer than the helper retries it.
    fake.refuse = lambda action, index, doc_id: 429 if doc_id == "a#root#0" else None
    outcome = _write(fake, _document("a") + _document("b"))
    assert outcome.transient  # the batch is retried...
    assert "state:a" not in fake.ids("v1")  # ...and, the old state kept, applies the change again
    assert {"b#root#0", "state:b"} <= fake.ids("v1")  # a document whose chunks landed is done


def test_a_refused_chunk_holds_back_its_state_record_for_good_too() -> None:
    fake = FakeElasticsearch()
    fake.refuse = lambda action, index, doc_id: 400 if doc_id == "a#root#0" else None
    outcome = _write(fake, _document("a"))
    assert set(outcome.rejected) == {"a"}  # dead-lettered, and no state claims the chunk
    assert fake.ids("v1") == set()


def test_a_batch_whose_chunks_all_land_writes_every_state_record() -> None:
    fake = FakeElasticsearch()
    outcome = _write(fake, _document("a") + _document("b"))
    assert not outcome.transient and not outcome.rejected and not outcome.conflicts
    assert fake.ids("v1") == {"a#root#0", "state:a", "b#root#0", "state:b"}


def test_one_refresh_makes_a_batch_searchable() -> None:
    """The chunks go without a refresh of their own: the state records' refresh, after them on the
    index's one shard, makes both searchable. A store that does not refresh at all never asks for one."""
    fake = FakeElasticsearch()
    _write(fake, _document("a") + _document("b"))
    assert fake.bulk_refreshes == ["false", "true"]

    async def without_refresh() -> None:
        async with serving(fake) as es:
            await DocumentStore(es, "v1", "false", limits=NO_WAIT).bulk(_document("c"))

    fake.bulk_refreshes.clear()
    asyncio.run(without_refresh())
    assert fake.bulk_refreshes == ["false", "false"]
