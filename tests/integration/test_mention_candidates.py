"""The deletion lane's candidate search (forget/queries.py) finds every written form of a person in
an index as the project creates it, whatever its analysis does to their words: the english
analyzer stems ("Moses" is kept as "mose", "Daisy" as "daisi"), and term-level queries are not
analysed. The redactor confirms each candidate; a form the search misses is never redacted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from streams.clients import elasticsearch_client
from streams.elastic.hybrid_index import ANALYSES, index_body
from streams.forget.expand import mention_patterns
from streams.forget.queries import mention_query
from streams.pipeline.mentions import Redactor, pattern_hashes
from streams.settings import Settings

pytestmark = pytest.mark.integration

# Surnames whose last letters a Porter stemmer rewrites, and an email whose local part it rewrites.
PEOPLE = {
    "Priya Moses": "priya.moses@umbrella-health.org",
    "Dana Daisy-Hughes": "dana.daisy-hughes@example.com",
    "Omar Abbasi": "oabbasies@example.com",
}
WRITTEN = [
    "{name} signed off the rollout.",
    "{surname}, {given} signed off the rollout.",
    "{upper} is in copy.",
    "Escalate to mailto:{email} first.",
    "Write to {email} about it.",
    "{name}'s team owns it.",
]


@pytest.fixture(params=ANALYSES)
def index(local_stack: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[Elasticsearch, str]]:
    client = elasticsearch_client(local_stack)
    name = f"streams-candidates-test-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=name, **index_body(4, analysis=request.param))
    try:
        yield client, name
    finally:
        client.indices.delete(index=name, ignore_unavailable=True)
        client.close()


def test_every_written_form_is_a_candidate(index: tuple[Elasticsearch, str]) -> None:
    client, name = index
    key = b"k" * 32
    expected: dict[str, set[str]] = {}
    for person, email in PEOPLE.items():
        given, surname = person.split(" ", 1)
        for number, form in enumerate(WRITTEN):
            text = form.format(name=person, surname=surname, given=given, upper=person.upper(), email=email)
            chunk_id = f"{email}#{number}"
            client.index(index=name, id=chunk_id, document={"kind": "chunk", "text": text, "title": "Rollout"})
            expected.setdefault(email, set()).add(chunk_id)
    client.indices.refresh(index=name)
    for person, email in PEOPLE.items():
        patterns = mention_patterns({f"email:{email}"}, [["name", person]])
        redactor = Redactor(key, pattern_hashes(key, patterns))
        hits = client.search(index=name, size=100, query=mention_query(patterns))["hits"]["hits"]
        found = {hit["_id"] for hit in hits if redactor.mentions(hit["_source"]["text"])}
        assert expected[email] <= found, f"{person}: never a candidate: {sorted(expected[email] - found)}"


PHONES = {"+49 30 1234567": ["030 1234567", "+49 (0)30 123 4567", "0049301234567"], "+1-555-234-5678": ["555.234.5678"]}


def test_every_written_phone_is_a_candidate(index: tuple[Elasticsearch, str]) -> None:
    client, name = index
    key = b"k" * 32
    for phone, forms in PHONES.items():
        ids = set()
        for number, form in enumerate(forms):
            ids.add(chunk_id := f"{phone}#{number}")
            client.index(index=name, id=chunk_id, document={"kind": "chunk", "text": f"call her on {form} today."})
        client.indices.refresh(index=name)
        patterns = mention_patterns(set(), [["phone", phone]])
        redactor = Redactor(key, pattern_hashes(key, patterns))
        hits = client.search(index=name, size=100, query=mention_query(patterns))["hits"]["hits"]
        found = {hit["_id"] for hit in hits if redactor.mentions(hit["_source"]["text"])}
        assert ids <= found, f"{phone}: never a candidate: {sorted(ids - found)}"
