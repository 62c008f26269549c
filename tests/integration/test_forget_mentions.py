"""Forgetting a person who is named in other people's documents: documents about them go, mentions
of them (email, full name, phone) are redacted and re-embedded, the write path keeps redacting
afterwards, the verification finds a mention planted behind the pipeline's back, and dead letters
whose raw bytes mention them are tombstoned."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from streams.forget.expand import Identity, mention_patterns
from streams.forget.verify import verify_forgotten
from streams.observability.dead_letters import dead_letter_key
from streams.pipeline.mentions import MentionPattern, Redactor, pattern_hashes
from streams.records import Origin
from streams.settings import Settings
from streams.sources import edits
from tests.integration.helpers import (
    document_chunks,
    es_client,
    found_documents,
    hybrid,
    messages_after,
    produce,
    row_events,
    topic_end_offsets,
    unique,
    verification_hits,
    wait_until,
)
from tests.integration.test_forget import _receipt, _request_forget, purged_receipt

pytestmark = pytest.mark.integration


@dataclass
class Named:
    email: str
    name: str
    phone: str
    contact_doc: str
    own_ticket: str
    mentions: dict[str, str]  # another person's document -> a word only it contains

    def patterns(self) -> list[str]:
        return [self.email, self.name, self.phone]


def _seed(es: Any) -> Named:
    last = unique("pk").title()
    name, email = f"Priya {last}", f"priya.{last.lower()}@umbrella-health.org"
    phone = f"+1-555-{random.randint(200, 989)}-{random.randint(1000, 9999)}"
    contact_id = edits.add_contact("Priya", last, email, ["sales"], phone=phone)
    own_word = unique()
    own = edits.add_ticket(f"VPN {own_word}", f"My VPN drops, {own_word}.", email, ["support"])
    words = [unique() for _ in range(3)]
    other = edits.add_ticket(
        f"Outage {words[0]}",
        f"{name} from our platform team ({email}) first noticed the {words[0]} outage.\n\n"
        f"Please keep {name.upper()} in copy, or call her at {phone.replace('-', ' ')}.",
        f"other.{unique('o')}@example.com",
        ["support"],
    )
    note = edits.add_note(
        edits.add_contact("Omar", unique("om").title(), f"omar.{unique('o')}@example.com", ["sales"]),
        f"rep.{unique('r')}@example.com",
        f"Omar says {name} ({phone}) signed off the {words[1]} renewal.",
    )
    page = edits.new_wiki_page(
        f"Runbook {unique('t')}",
        f"== Contacts ==\n\nEscalate {words[2]} incidents to mailto:{email}.",
        ["engineering"],
        f"wiki.{unique('w')}@example.com",
    )
    named = Named(
        email,
        name,
        phone,
        f"crm/contact/{contact_id}",
        f"tickets/ticket/{own}",
        {f"tickets/ticket/{other}": words[0], f"crm/note/{note}": words[1], f"wiki/page/{page}": words[2]},
    )
    for doc, word in [*named.mentions.items(), (named.own_ticket, own_word)]:
        assert wait_until(lambda: doc in found_documents(es, word), timeout=120), f"{doc} was never indexed"  # noqa: B023
    assert wait_until(lambda: named.contact_doc in found_documents(es, email), timeout=60)
    return named


def _texts_naming(named: Named, hits: list[dict[str, Any]]) -> list[str]:
    text = json.dumps(hits).lower()
    return [p for p in (named.email, named.name.lower(), named.phone) if p.lower() in text]


def _assert_no_result_contains_them(es: Any, named: Named) -> None:
    es.indices.refresh(index="streams-chunks")
    for pattern in named.patterns():
        bm25 = es.search(
            index="streams-chunks",
            size=50,
            query={"multi_match": {"query": pattern, "type": "phrase", "fields": ["text", "title", "section"]}},
        )["hits"]["hits"]
        assert bm25 == [], f"BM25 phrase search for {pattern!r} finds {[h['_id'] for h in bm25]}"
        hits = hybrid(pattern, k=50)["hits"]
        assert not _texts_naming(named, hits), f"hybrid search for {pattern!r} returns text naming them"


def test_forget_deletes_what_is_about_them_and_redacts_what_mentions_them(worker: Settings) -> None:
    es = es_client(worker)
    named = _seed(es)
    request_id, start = _request_forget(worker, named.email)
    receipt = _receipt(worker, request_id, start)
    assert receipt["status"] == "unsearchable", receipt["error"]

    deleted = {doc for r in receipt["removed"] for doc in r["document_ids"]}
    redacted = {doc for r in receipt["redacted"] for doc in r["document_ids"]}
    assert {named.contact_doc, named.own_ticket} <= deleted
    assert set(named.mentions) <= redacted, receipt["redacted"]
    assert not set(named.mentions) & deleted, "documents that only mention them must stay"
    assert len(receipt["pattern_hashes"]) >= 3  # email, name, phone (and the phone without +1)
    assert not any(named.name.lower() in h or named.email in h for h in receipt["pattern_hashes"])
    assert verification_hits(receipt) == (0, 0, 0, 0)

    _assert_no_result_contains_them(es, named)
    for doc, word in named.mentions.items():  # the rest of each document stays searchable, redacted
        chunks = document_chunks(es, doc)
        assert chunks and doc in found_documents(es, word), f"{doc} lost more than the mention"
        assert any("[redacted]" in c["text"] for c in chunks)

    # A replay of the mentioning ticket's old events and a new ticket naming them: indexed redacted.
    other_ticket = next(doc for doc in named.mentions if doc.startswith("tickets/"))
    produce("tickets.public.tickets", row_events("tickets.public.tickets", {"id": int(other_ticket.split("/")[-1])}))
    late_word = unique()
    late = edits.add_ticket(
        f"Follow-up {late_word}",
        f"{named.name} ({named.email}) asked about {late_word} again.",
        f"third.{unique('t')}@example.com",
        ["support"],
    )
    late_doc = f"tickets/ticket/{late}"
    assert wait_until(lambda: late_doc in found_documents(es, late_word), timeout=120)
    assert all(named.name not in c["text"] and named.email not in c["text"] for c in document_chunks(es, late_doc))
    assert "[redacted]" in json.dumps(document_chunks(es, late_doc))
    _assert_no_result_contains_them(es, named)

    # The second receipt: the force merge that expunges the deleted documents ran (within the purge window).
    purged = purged_receipt(worker, request_id, start, timeout=worker.purge_window_s + 120)
    assert purged["purged_at"] is not None and purged["purged_at"] >= purged["unsearchable_at"], purged
    assert purged["removed"] == receipt["removed"] and purged["redacted"] == receipt["redacted"]
    # What the request kept while in flight and until its purge (streams/forget/progress.py) is gone now.
    assert wait_until(lambda: not es.exists(index=worker.forget_progress_index, id=request_id), timeout=30)


def test_the_verification_finds_a_mention_planted_behind_the_pipeline(worker: Settings) -> None:
    """A check that can fail: a chunk written straight into the index (no subjects, nothing the
    pipeline knows of) that names the person is found by the verification's probes."""
    es = es_client(worker)
    last = unique("pl").title()
    email = f"planted.{last.lower()}@example.com"
    planted_id = f"tickets/ticket/planted-{last}#root#0"
    es.index(
        index="streams-chunks",
        id=planted_id,
        refresh=True,
        document={
            "kind": "chunk",
            "document_id": f"tickets/ticket/planted-{last}",
            "part_id": "root",
            "source": "tickets",
            "chunk_number": 0,
            "text": f"Please keep Tom {last} ({email}) in copy.",
            "title": "Planted",
            "visible": True,
            "groups": ["support"],
            "subjects": [],
            "vector": [0.05] * 384,
        },
    )
    patterns = mention_patterns({f"email:{email}"}, [["name", f"Tom {last}"]])
    key = worker.ledger_key_bytes()
    redactor = Redactor(key, pattern_hashes(key, patterns))

    async def embed(texts: list[str]) -> list[list[float]]:
        return [[0.05] * 384 for _ in texts]  # the planted chunk's own vector: the nearest neighbour

    async def verify() -> Any:
        async with AsyncElasticsearch(worker.elasticsearch_url, basic_auth=worker.elasticsearch_auth()) as client:
            return await verify_forgotten(
                client, worker.index_alias, Identity({f"email:{email}"}, patterns), redactor, embed
            )

    try:
        verification = asyncio.run(verify())
        assert verification.subject_field_hits == 0  # what the old, subject-filtered check looked at
        assert verification.bm25_hits >= 1 and verification.knn_hits >= 1 and verification.hybrid_hits >= 1
        assert not verification.clean
    finally:
        es.delete(index="streams-chunks", id=planted_id, refresh=True)
    assert MentionPattern("email", email).usable()


def test_a_forget_request_tombstones_the_dead_letters_that_mention_them(worker: Settings) -> None:
    """Dead letters from the decode stage carry no subjects: the person is only in their raw bytes (by
    email, or by name in another case). The request tombstones those two and leaves a third, about
    someone else, alone (a check that can fail both ways)."""
    es = es_client(worker)
    last = unique("dl").title()
    name, email = f"Dana {last}", f"dana.{last.lower()}@example.com"
    contact = edits.add_contact("Dana", last, email, ["sales"])  # the identity record: her name is a pattern
    assert wait_until(lambda: f"crm/contact/{contact}" in found_documents(es, email), timeout=120)
    topic = "tickets.public.tickets"
    dead_start = topic_end_offsets(worker.dead_letter_topic)
    bad = {  # malformed JSON and a non-envelope: dead-lettered at decode, before any mapping
        "email": f'{{"op": "c", "after": {{"description": "mail {email} about it"'.encode(),
        "name": f'{{"hello": "{name.upper()} wrote this"}}'.encode(),
        "someone else": f'{{"op": "c", "after": {{"description": "mail keep.{unique()}@example.com"'.encode(),
    }
    origins = dict(zip(bad, produce(topic, [(b'{"id": 1}', value) for value in bad.values()], worker), strict=True))
    keys = {case: dead_letter_key(Origin(topic, *origin)) for case, origin in origins.items()}

    def records() -> dict[bytes, list[tuple[int, bytes | None]]]:
        """Per key, (partition, value) of each of its records in offset order within a partition."""
        found: dict[bytes, list[tuple[int, bytes | None]]] = {}
        messages = messages_after(worker.dead_letter_topic, dead_start)
        for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
            found.setdefault(m.key(), []).append((m.partition(), m.value()))
        return found

    def survives(key: bytes) -> bool:
        """Whether compaction keeps the dead letter: no tombstone after it *in its own partition*."""
        (partition, _), *later = records()[key]
        return not any(p == partition and value is None for p, value in later)

    dead_lettered = wait_until(lambda: set(keys.values()) <= set(records()), timeout=120)
    assert dead_lettered, "the bad events were not dead-lettered"
    request_id, start = _request_forget(worker, email)
    receipt = _receipt(worker, request_id, start)
    assert receipt["dead_letters_tombstoned"] >= 2, receipt
    assert not survives(keys["email"]) and not survives(keys["name"]), "a dead letter naming her survives compaction"
    assert survives(keys["someone else"]), "a dead letter about someone else was tombstoned"


# The written forms of docs/forgetting.md#how-a-person-is-written, each in a ticket, a CRM note and a
# wiki page of other people: redacted or kept as the default policy ("nearby") says. {last} is the
# surname, {phone} a national form of the person's phone.
FORMS = {
    "Park-{last}, Priya signed off the rollout": True,
    "PRIYA ANNE PARK-{last} signed off the rollout": True,
    "Priya A. Park-{last} signed off the rollout": True,
    "call her on {phone} about the rollout": True,
    "P. Park-{last} from Umbrella Health signed off the rollout": True,
    "P. Park-{last} signed off the rollout": False,
    "Priya met the Park-{last} family at the rollout": False,
}


def test_every_written_form_is_handled_as_the_policy_says_in_each_source(worker: Settings) -> None:
    es = es_client(worker)
    last = unique("pl").title()
    email = f"priya.park-{last.lower()}@umbrella-health.org"
    local = str(random.randint(1_000_000, 9_999_999))  # the ledger keeps earlier runs' phones: a new one
    contact = edits.add_contact("Priya Anne", f"Park-{last}", email, ["sales"], phone=f"+49 30 {local}")
    assert wait_until(lambda: f"crm/contact/{contact}" in found_documents(es, email), timeout=120)
    other = edits.add_contact("Omar", unique("om").title(), f"omar.{unique('o')}@example.com", ["sales"])
    written: dict[str, tuple[str, bool, str]] = {}  # document -> (a word only it contains, redacted?, form)
    for number, (form, redacted) in enumerate(FORMS.items()):
        text = form.format(last=last, phone=f"030 {local}")
        words = [unique() for _ in range(3)]
        ticket = edits.add_ticket(f"Rollout {words[0]}", f"{text} ({words[0]}).", f"t{number}@example.com", ["support"])
        note = edits.add_note(other, f"rep{number}@example.com", f"{text} ({words[1]}).")
        page = edits.new_wiki_page(f"Rollout {words[2]}", f"{text} ({words[2]}).", ["engineering"], "w@example.com")
        for doc, word in (
            (f"tickets/ticket/{ticket}", words[0]),
            (f"crm/note/{note}", words[1]),
            (f"wiki/page/{page}", words[2]),
        ):
            written[doc] = (word, redacted, form)
    for doc, (word, _, _) in written.items():
        assert wait_until(lambda: doc in found_documents(es, word), timeout=120), f"{doc} was never indexed"  # noqa: B023

    request_id, start = _request_forget(worker, email)
    receipt = _receipt(worker, request_id, start)
    assert receipt["status"] == "unsearchable", receipt["error"]
    redacted_docs = {doc for r in receipt["redacted"] for doc in r["document_ids"]}
    wrong = {
        doc: (form, expected)
        for doc, (_, expected, form) in written.items()
        if (doc in redacted_docs) is not expected
        or ("[redacted]" in json.dumps(document_chunks(es, doc))) is not expected
    }
    assert not wrong, f"handled against the policy: {wrong}"
    assert verification_hits(receipt) == (0, 0, 0, 0)

    # The write path applies the same forms: written after the request, indexed redacted.
    word = unique()
    late = edits.add_ticket(f"Later {word}", f"Park-{last}, Priya asked again ({word}).", "t@example.com", ["support"])
    late_doc = f"tickets/ticket/{late}"
    assert wait_until(lambda: late_doc in found_documents(es, word), timeout=120)
    assert "[redacted]" in json.dumps(document_chunks(es, late_doc))
    assert f"park-{last.lower()}" not in json.dumps(document_chunks(es, late_doc)).lower()
