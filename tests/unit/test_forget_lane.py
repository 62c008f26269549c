"""A deletion request survives an Elasticsearch whose write pool is full.

While a backlog is indexed, Elasticsearch answers bulk items with 429. The deletion lane's writes
(scrubbing state records, deleting the chunks about the person, rewriting the chunks that mention
them with new vectors) go through the real elasticsearch-py bulk helper against a small HTTP fake
that refuses every item five times: the helper sends each again three times after a backoff, the
item still refused comes back as a 429, which is transient (errors.classify_item), so the lane
retries the request and it ends `unsearchable`, never `failed`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.agents.suppression import SuppressionLedger
from streams.elastic.bulk import BulkLimits
from streams.forget.lane import ForgetLane, LaneIO
from streams.forget.receipt import NOTHING_INDEXED, Receipt
from streams.forget.request import parse_request
from streams.pipeline.mentions import MARKER
from streams.pipeline.plan_batch import state_id
from streams.pipeline.update_document_state import DocumentState, PartState, RootState
from streams.records import Origin, chunk_id, text_hash
from streams.settings import Settings
from tests.unit.fake_elasticsearch import FakeElasticsearch, serving

INDEX, ALIAS = "chunks-v1", "chunks"
REFUSALS = 5  # per item: more than the helper's own retries, so the lane's retry runs too
VECTOR = [0.5, 0.25, 0.125]


class Encoder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def encode_async(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return [list(VECTOR) for _ in texts]


class Runtime:
    """The pieces of the worker's runtime the lane reads (forget.lane.LaneRuntime)."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings) -> None:
        self.es = es
        self.ledger = SuppressionLedger(settings.ledger_key_bytes())
        self.encoder = Encoder()

    def forget_groups(self) -> Sequence[tuple[str, Encoder]]:
        return [(ALIAS, self.encoder)]


def _document(fake: FakeElasticsearch, state: DocumentState, texts: dict[str, list[str]]) -> None:
    """A document as the indexer leaves it: its chunks, and its state record listing their hashes."""
    for part_id, part_texts in texts.items():
        state.parts[part_id].chunk_hashes = [text_hash(text) for text in part_texts]
        for number, text in enumerate(part_texts):
            fake.put(
                INDEX,
                chunk_id(state.document_id, part_id, number),
                {
                    "kind": "chunk",
                    "document_id": state.document_id,
                    "part_id": part_id,
                    "chunk_number": number,
                    "source": state.source,
                    "text": text,
                    "title": state.root.title if state.root else "",
                    "section": "",
                    "text_hash": text_hash(text),
                    "subjects": state.chunk_subjects(),
                    "visible": True,
                    "vector": [0.0, 0.0, 1.0],
                },
            )
    fake.put(INDEX, state_id(state.document_id), state.to_json())


def _seed(fake: FakeElasticsearch) -> None:
    contact = ["email:ann@example.com", "contact_id:7"]
    # Her contact record (an identity record: it links her email and id, and says how she is written).
    _document(
        fake,
        DocumentState(
            "crm/contact/7",
            "crm",
            RootState(1, title="Ann Archer", subjects=contact, identity=True, mentions=[["name", "Ann Archer"]]),
            {"root": PartState(1, subjects=contact)},
        ),
        {"root": ["Ann Archer, customer since 2019"]},
    )
    # A ticket of someone else's with a comment she wrote: the comment goes, the ticket stays.
    _document(
        fake,
        DocumentState(
            "tickets/ticket/3",
            "tickets",
            RootState(1, title="Login fails", subjects=["contact_id:9"]),
            {"root": PartState(1, subjects=["contact_id:9"]), "comment:1": PartState(2, subjects=["contact_id:7"])},
        ),
        {"root": ["The login page fails"], "comment:1": ["Same for me since Monday"]},
    )
    # A ticket that mentions her by name: redacted and re-embedded.
    _document(
        fake,
        DocumentState(
            "tickets/ticket/4",
            "tickets",
            RootState(1, title="Invoice", subjects=["contact_id:9"]),
            {"root": PartState(1, subjects=["contact_id:9"])},
        ),
        {"root": ["Please keep Ann Archer in copy of the invoice"]},
    )


def _lane(settings: Settings, runtime: Runtime, receipts: list[Receipt], dead: list[Any]) -> ForgetLane:
    async def publish_ledger(entries: dict[str, str], request_id: str) -> dict[int, int]:
        return {0: len(entries)}

    async def wait_applied(written: dict[int, int]) -> None:
        return None

    async def send_receipt(receipt: Receipt) -> None:
        receipts.append(receipt)

    async def send_dead_letter(origin: Origin, record: dict[str, Any]) -> None:
        dead.append(record)

    io = LaneIO(publish_ledger, wait_applied, send_receipt, send_dead_letter, lambda *_: 0)
    # The helper's backoff shortened (its retries are what is tested, not its clock).
    return ForgetLane(settings, runtime, io, BulkLimits(retries=3, backoff_s=0.001))


def _refusing_every_item(times: int) -> Any:
    seen: Counter[tuple[str, str]] = Counter()

    def refuse(action: str, index: str, doc_id: str) -> int | None:
        seen[(action, doc_id)] += 1
        return 429 if seen[(action, doc_id)] <= times else None

    return refuse


def test_a_deletion_request_survives_429s_on_its_writes_and_ends_unsearchable() -> None:
    settings = Settings(sources=["crm", "tickets"])
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]}, refuse=_refusing_every_item(REFUSALS))
    _seed(fake)
    request = parse_request(
        {
            "request_id": "r-429",
            "subject": "Ann@Example.com",
            "subject_kind": "email",
            "requested_by": "compliance",
            "requested_at": datetime.now(UTC),
        }
    )
    receipts: list[Receipt] = []
    dead: list[Any] = []
    gate_held: dict[str, set[bool]] = {}

    async def scenario() -> Receipt | Exception:
        async with serving(fake) as es:
            runtime = Runtime(es, settings)
            fake.observe = lambda endpoint: gate_held.setdefault(endpoint, set()).add(runtime.ledger.gate.locked())
            return await _lane(settings, runtime, receipts, dead).handle_with_retries(request)

    receipt = asyncio.run(scenario())

    assert isinstance(receipt, Receipt), receipt
    assert receipt.status == "unsearchable" and receipts == [receipt] and dead == []
    refused = Counter(doc_id for _, doc_id, status in fake.bulk_items if status == 429)
    assert refused and set(refused.values()) == {REFUSALS}  # every write was refused five times, then landed
    removed = {count.source: count.document_ids for count in receipt.removed if count.documents}
    assert removed == {"crm": ["crm/contact/7"], "tickets": ["tickets/ticket/3"]}
    assert [count.document_ids for count in receipt.redacted if count.documents] == [["tickets/ticket/4"]]
    assert set(receipt.identifiers) == {"email:ann@example.com", "contact_id:7"}
    assert receipt.state_records_removed == 2  # her contact's and the ticket she commented on
    # The erase writes under the indexer's write gate; the verification (one _msearch) runs without it.
    assert gate_held["_bulk"] == {True} and gate_held["_msearch"] == {False}

    chunks = {doc_id: fake.source(INDEX, doc_id) for doc_id in fake.ids(INDEX) if not doc_id.startswith("state:")}
    assert set(chunks) == {"tickets/ticket/3#root#0", "tickets/ticket/4#root#0"}
    redacted = chunks["tickets/ticket/4#root#0"] or {}
    assert "Ann Archer" not in redacted["text"] and MARKER in redacted["text"]
    assert redacted["vector"] == VECTOR  # embedded again from the redacted text
    ticket = DocumentState.from_json(fake.source(INDEX, state_id("tickets/ticket/4")) or {})
    assert ticket.parts["root"].chunk_hashes == [text_hash(redacted["text"])]


class Store:
    """The indexer's document store, empty, recording every bulk write."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.reuse_from = None

    async def load_states(self, document_ids: Sequence[str]) -> dict[str, Any]:
        from streams.pipeline.plan_batch import StoredState

        return {document_id: StoredState(None) for document_id in document_ids}

    async def load_vectors(self, chunk_ids: Sequence[str]) -> dict[str, Any]:
        return {}

    async def state_versions(self, document_ids: Sequence[str]) -> dict[str, Any]:
        return {document_id: None for document_id in document_ids}

    async def bulk(self, operations: Sequence[Any]) -> list[dict[str, Any]]:
        self.written += [operation.action for operation in operations]
        return [{"index": {"_id": operation.action["_id"], "status": 201}} for operation in operations]


def test_a_batch_planned_before_the_request_is_planned_again_and_writes_nothing_of_the_subject() -> None:
    """Why the lane may verify without the gate: a batch embedded while the request added its ledger
    entries finds the ledger's version moved at the gate, and is planned again with them."""
    from streams.agents.write_changes import ChangeWriter
    from tests.unit.test_plan_batch import chunker, revision

    ledger = SuppressionLedger(b"k" * 32)
    store = Store()

    class ArrivingRequest:
        """The model, slow enough for a deletion request to add its entries meanwhile."""

        async def encode_async(self, texts: list[str]) -> list[list[float]]:
            ledger.add_identifiers({"email:ann@example.com"})
            return [list(VECTOR) for _ in texts]

    writer = ChangeWriter(store, ArrivingRequest(), chunker, ledger)  # type: ignore[arg-type]
    result = asyncio.run(writer.write([revision(11, 100, "Ann's notes", "ann@example.com")]))
    assert [change.version for change in result.suppressed] == [11] and result.applied == []
    assert [action["_id"] for action in store.written] == ["state:wiki/page/1"]  # no chunk of hers
    assert "email:ann@example.com" not in str(store.written)


def test_a_subject_never_indexed_is_told_nothing_indexed_and_no_purge_note_is_kept() -> None:
    settings = Settings(sources=["crm", "tickets"])
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    request = parse_request(
        {
            "request_id": "r-ghost",
            "subject": "ghost@example.com",
            "subject_kind": "email",
            "requested_by": "compliance",
            "requested_at": datetime.now(UTC),
        }
    )
    receipts: list[Receipt] = []

    async def scenario() -> Receipt | Exception:
        async with serving(fake) as es:
            return await _lane(settings, Runtime(es, settings), receipts, []).handle_with_retries(request)

    receipt = asyncio.run(scenario())
    assert isinstance(receipt, Receipt) and receipt.status == NOTHING_INDEXED and receipts == [receipt]
    assert receipt.verification is not None and receipt.verification.subject_field_hits == 0
    assert fake.ids(settings.forget_progress_index) == set()  # no receipt waits for a purge that has nothing to do
