"""A worker that dies after the scrub leaves the next one everything the request must erase.

The scrub empties the identity record (the CRM contact that links her email and contact id and says
how she is written: full name, phone). A worker killed right after that write, before the redaction,
used to leave the next worker only her email: it redacted and verified by the email alone, left a
ticket mentioning her name searchable, and certified the request `unsearchable`. The saved note now
carries the expanded identity, encrypted under a key derived from the ledger key; a worker holding
another key refuses the note instead of certifying without it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from elasticsearch import AsyncElasticsearch
from pydantic import SecretStr

from streams.errors import IndexingError, StreamsError
from streams.forget.outcome import ForgetOutcome
from streams.forget.progress import ForgetProgress, UnreadableNote
from streams.forget.receipt import Receipt
from streams.forget.request import DeletionRequest, parse_request
from streams.pipeline.mentions import MARKER, MentionPattern, pattern_hashes
from streams.pipeline.update_document_state import DocumentState, PartState, RootState
from streams.settings import Settings
from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
from tests.unit.test_forget_lane import ALIAS, INDEX, Runtime, _document, _lane

NAME, PHONE, EMAIL = "Ann Archer", "+1 555 010 2345", "ann@example.com"
PROGRESS = "streams-forget-progress"
NAMING = "tickets/ticket/4#root#0"
CALLING = "tickets/ticket/5#root#0"
T = TypeVar("T")


def _settings(key: str = "the-ledger-key-of-this-deployment") -> Settings:
    return Settings(sources=("crm", "tickets"), ledger_key=SecretStr(key), forget_progress_index=PROGRESS)


def _request() -> DeletionRequest:
    return parse_request(
        {
            "request_id": "r-crash",
            "subject": EMAIL,
            "subject_kind": "email",
            "requested_by": "compliance",
            "requested_at": datetime.now(UTC),
        }
    )


def _index() -> FakeElasticsearch:
    """Her contact (the identity record) and two tickets of someone else's, one naming her, one
    giving her phone."""
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    contact = [f"email:{EMAIL}", "contact_id:7"]
    root = RootState(1, title=NAME, subjects=contact, identity=True, mentions=[["name", NAME], ["phone", PHONE]])
    _document(
        fake,
        DocumentState("crm/contact/7", "crm", root, {"root": PartState(1, subjects=contact)}),
        {"root": [f"{NAME}, customer since 2019"]},
    )
    for number, text in ((4, f"Please keep {NAME} in copy of the invoice"), (5, "Call back on 555 010 2345 today")):
        _document(
            fake,
            DocumentState(
                f"tickets/ticket/{number}",
                "tickets",
                RootState(1, title="Invoice", subjects=["contact_id:9"]),
                {"root": PartState(1, subjects=["contact_id:9"])},
            ),
            {"root": [text]},
        )
    return fake


def run(fake: FakeElasticsearch, scenario: Callable[[AsyncElasticsearch], Awaitable[T]]) -> T:
    async def served() -> T:
        async with serving(fake) as es:
            return await scenario(es)

    return asyncio.run(served())


async def _dies_after_the_scrub(es: AsyncElasticsearch, fake: FakeElasticsearch, settings: Settings) -> None:
    """One attempt of a worker that is gone right after the scrub's bulk write was applied: nothing of
    it stays in memory, and no retry of its own follows."""
    fake.after_bulk = 400  # the scrub's bulk (the first bulk of the erase) lands, and the attempt ends there
    lane = _lane(settings, Runtime(es, settings), [], [])
    request = _request()
    with pytest.raises(IndexingError):
        await lane.handle(request, ForgetOutcome([]), lane.progress(request.request_id))
    contact = DocumentState.from_json(fake.source(INDEX, "state:crm/contact/7") or {})
    assert contact.root is not None and not contact.root.subjects and not contact.root.mentions  # scrubbed
    assert NAME in str(fake.source(INDEX, NAMING)), "the redaction had not run when the worker died"


def test_a_new_worker_after_a_crash_past_the_scrub_still_redacts_the_name_and_the_phone() -> None:
    fake = _index()
    settings = _settings()
    receipts: list[Receipt] = []
    notes: list[str] = []

    async def scenario(es: AsyncElasticsearch) -> Receipt | StreamsError:
        await _dies_after_the_scrub(es, fake, settings)
        notes.append(json.dumps(fake.source(PROGRESS, "r-crash")))
        return await _lane(settings, Runtime(es, settings), receipts, []).handle_with_retries(_request())

    receipt = run(fake, scenario)

    assert isinstance(receipt, Receipt), receipt
    assert receipt.status == "unsearchable" and receipts == [receipt]
    for chunk in (NAMING, CALLING):
        text = (fake.source(INDEX, chunk) or {})["text"]
        assert MARKER in text and NAME not in text and "555 010 2345" not in text, text
    assert [count.document_ids for count in receipt.redacted if count.documents] == [
        ["tickets/ticket/4", "tickets/ticket/5"]
    ]
    assert set(receipt.identifiers) == {f"email:{EMAIL}", "contact_id:7"}  # the linked id, from the note
    written = {MentionPattern("email", EMAIL), MentionPattern("name", NAME), MentionPattern("phone", PHONE)}
    assert set(receipt.pattern_hashes) == set(pattern_hashes(settings.ledger_key_bytes(), written))
    (note,) = notes
    assert "identity" in note
    for clear_text in (NAME, NAME.lower(), EMAIL, "contact_id:7", "5550102345", "555 010 2345"):
        assert clear_text not in note, f"the note holds {clear_text!r} in clear text"


def test_a_note_written_under_one_ledger_key_is_refused_under_another() -> None:
    outcome = ForgetOutcome([f"email:{EMAIL}"], patterns={MentionPattern("name", NAME)})

    async def scenario(es: AsyncElasticsearch) -> ForgetOutcome:
        await ForgetProgress(es, PROGRESS, "r1", b"one key").save(outcome)
        with pytest.raises(UnreadableNote, match="does not open with this worker's STREAMS_LEDGER_KEY"):
            await ForgetProgress(es, PROGRESS, "r1", b"another key").load(ForgetOutcome([]))
        fake.docs[(PROGRESS, "r2")] = fake.docs[(PROGRESS, "r1")]  # a note copied to another request
        with pytest.raises(UnreadableNote):
            await ForgetProgress(es, PROGRESS, "r2", b"one key").load(ForgetOutcome([]))
        return await ForgetProgress(es, PROGRESS, "r1", b"one key").load(ForgetOutcome([]))

    fake = FakeElasticsearch()
    loaded = run(fake, scenario)
    assert loaded.identifiers == [f"email:{EMAIL}"] and loaded.patterns == {MentionPattern("name", NAME)}


def test_a_worker_with_another_key_gives_the_request_up_and_keeps_the_note() -> None:
    """Refused, never certified by the email alone, and the note stays: the request, handled again by
    a worker with the right key, still forgets the name."""
    fake = _index()
    settings = _settings()
    receipts: list[Receipt] = []

    async def scenario(es: AsyncElasticsearch) -> tuple[Receipt | StreamsError, Receipt | StreamsError]:
        await _dies_after_the_scrub(es, fake, settings)
        other = _settings("a-key-from-another-deployment")
        refused = await _lane(other, Runtime(es, other), receipts, []).handle_with_retries(_request())
        assert fake.source(PROGRESS, "r-crash") is not None, "the note a worker cannot read is kept"
        return refused, await _lane(settings, Runtime(es, settings), receipts, []).handle_with_retries(_request())

    refused, receipt = run(fake, scenario)
    assert isinstance(refused, StreamsError) and "STREAMS_LEDGER_KEY" in str(refused)
    assert isinstance(receipt, Receipt) and receipts == [receipt]  # only the right key's receipt
    assert NAME not in (fake.source(INDEX, NAMING) or {})["text"]


def test_a_request_handled_again_after_its_receipt_certifies_no_less() -> None:
    """A worker that dies after the receipt, before the request's offset moved: the request comes back,
    the identity record is gone, and the record kept for the purge still gives the whole identity."""
    fake = _index()
    settings = _settings()
    receipts: list[Receipt] = []

    async def scenario(es: AsyncElasticsearch) -> list[Receipt | StreamsError]:
        first = await _lane(settings, Runtime(es, settings), receipts, []).handle_with_retries(_request())
        assert (fake.source(PROGRESS, "r-crash") or {}).get("state") == "awaiting_purge"
        return [first, await _lane(settings, Runtime(es, settings), receipts, []).handle_with_retries(_request())]

    first, again = run(fake, scenario)
    assert isinstance(first, Receipt) and isinstance(again, Receipt) and receipts == [first, again]
    assert set(again.identifiers) == set(first.identifiers) == {f"email:{EMAIL}", "contact_id:7"}
    assert again.pattern_hashes == first.pattern_hashes
    assert again.redacted == first.redacted and again.removed == first.removed
