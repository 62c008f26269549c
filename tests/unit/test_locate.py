"""`streams locate`: every chunk, state record and dead letter that names or concerns a person, each with
why it matched, found with the deletion lane's own searches, so that it lists what `forget` erases; and
it changes nothing. Against the fake Elasticsearch, with the lane's seeded person (Ann Archer)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from streams import avro
from streams.agents import web
from streams.agents.forget_commands import deletion_request
from streams.forget.dead_letters import DeadLetterHit
from streams.forget.locate import (
    CHUNK,
    DEAD_LETTER,
    DELETE,
    MENTION,
    REDACT,
    SCRUB,
    STATE,
    SUBJECT,
    TOMBSTONE,
    WRITTEN_BY,
    Match,
    SubjectReport,
    locate,
    unaccounted,
)
from streams.forget.receipt import Receipt
from streams.forget.request import parse_request
from streams.pipeline.mentions import MentionPattern
from streams.settings import Settings
from tests.unit.fake_elasticsearch import FakeElasticsearch, serving
from tests.unit.test_forget_lane import ALIAS, INDEX, Runtime, _lane, _seed
from tests.unit.test_search_auth import OPERATOR_KEY, SUPPORT_KEY, _authenticator

SETTINGS = Settings(sources=["crm", "tickets"])
# A change that failed at decode: no subjects, her name only in its raw bytes.
PLANTED = DeadLetterHit(
    b"tickets.public.tickets/0/41",
    0,
    7,
    {"origin_topic": "tickets.public.tickets"},
    frozenset(),
    ('{"after": {"body": "call Ann Archer back"}}', "DecodeError: truncated"),
)
UNRELATED = DeadLetterHit(b"tickets.public.tickets/1/3", 1, 2, {}, frozenset(), ("{}", "DecodeError: x"))


def _scan(hits: list[DeadLetterHit]) -> Callable[[set[str], Callable[[str], int], set[MentionPattern]], Any]:
    def scan(identifiers: set[str], mentions: Callable[[str], int], patterns: set[MentionPattern]) -> Any:
        return [hit for hit in hits if identifiers & hit.named or any(mentions(text) for text in hit.texts)]

    return scan


def _locate(fake: FakeElasticsearch, subject: str = "ann@example.com") -> SubjectReport:
    async def scenario() -> SubjectReport:
        async with serving(fake) as es:
            return await locate(
                es, ALIAS, subject, "email", SETTINGS.ledger_key_bytes(), _scan([PLANTED, UNRELATED]), "dlq"
            )

    return asyncio.run(scenario())


def _by_id(report: SubjectReport) -> dict[str, Any]:
    return {finding.id: finding for finding in report.findings}


def test_locate_lists_what_names_or_mentions_her_with_why_and_changes_nothing() -> None:
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    before = copy.deepcopy(fake.docs)
    report = _locate(fake)
    assert fake.docs == before  # nothing written, nothing deleted

    assert set(report.identifiers) == {"email:ann@example.com", "contact_id:7"} and report.generations == [INDEX]
    found = _by_id(report)
    assert {f.place for f in report.findings} == {CHUNK, STATE, DEAD_LETTER}
    contact = found["crm/contact/7#root#0"]
    assert contact.action == DELETE and Match(SUBJECT, "contact_id:7", "root") in contact.matches
    comment = found["tickets/ticket/3#comment:1#0"]  # her comment on someone else's ticket
    assert comment.action == DELETE and comment.matches == [Match(WRITTEN_BY, "contact_id:7", "comment:1")]
    mention = found["tickets/ticket/4#root#0"]
    assert mention.action == REDACT and mention.matches == [Match(MENTION, "Ann Archer", "name")]
    assert found["state:tickets/ticket/3"].action == SCRUB
    letter = found["tickets.public.tickets/0/41"]
    assert letter.action == TOMBSTONE and letter.location == "dlq/0/7"
    assert letter.matches == [Match(MENTION, "Ann Archer", "name")]
    assert "tickets/ticket/3#root#0" not in found  # the ticket itself is someone else's
    assert "tickets.public.tickets/1/3" not in found
    assert any("written by contact_id:7" in line for line in report.lines())


def test_a_subject_never_indexed_is_reported_as_nothing_held() -> None:
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    report = _locate(fake, "ghost@example.com")
    assert report.findings == [] and "nothing held" in report.lines()[0]


def test_the_report_survives_its_avro_record() -> None:
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    report = _locate(fake)
    decoded = SubjectReport.from_dict(avro.decode("subject_report", avro.encode("subject_report", report.to_dict())))
    assert decoded.findings == report.findings and decoded.report_id == report.report_id


def test_forget_from_the_report_erases_what_it_listed() -> None:
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    report = _locate(fake)
    request = parse_request(deletion_request("", "email", "compliance", "GDPR Art. 17", report))
    assert request.report_id == report.report_id and set(request.identifiers) == set(report.identifiers)
    receipts: list[Receipt] = []

    async def scenario() -> Any:
        async with serving(fake) as es:
            return await _lane(SETTINGS, Runtime(es, SETTINGS), receipts, []).handle_with_retries(request)

    receipt = asyncio.run(scenario())
    assert isinstance(receipt, Receipt) and receipt.report_id == report.report_id
    record = {**receipt.to_dict(), "dead_letters_tombstoned": 1}  # the fake lane's scan tombstones nothing
    assert unaccounted(report, record) == []
    # The check can fail: a receipt that left her comment's document out does not account for it.
    short = {**record, "removed": [replace(c, document_ids=[]).__dict__ for c in receipt.removed]}
    assert any("tickets/ticket/3#comment:1#0" in line for line in unaccounted(report, short))
    assert unaccounted(report, {**record, "dead_letters_tombstoned": 0}) == ["1 dead letters listed, 0 tombstoned"]
    # And nothing it listed is left: locating again finds nothing.
    assert [f for f in _locate(fake).findings if f.place != DEAD_LETTER] == []


def test_identifiers_the_report_found_are_forgotten_even_if_the_identity_record_is_gone() -> None:
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    fake.docs.pop((INDEX, "state:crm/contact/7"))  # the identity record that links her email to contact 7
    request = parse_request(
        {
            "request_id": "r-report",
            "subject": "ann@example.com",
            "subject_kind": "email",
            "requested_by": "compliance",
            "requested_at": datetime.now(UTC),
            "identifiers": ["contact_id:7"],
            "report_id": "rep-1",
        }
    )

    async def scenario() -> Any:
        async with serving(fake) as es:
            return await _lane(SETTINGS, Runtime(es, SETTINGS), [], []).handle_with_retries(request)

    receipt = asyncio.run(scenario())
    assert isinstance(receipt, Receipt) and "contact_id:7" in receipt.identifiers
    assert "tickets/ticket/3" in {d for c in receipt.removed for d in c.document_ids}  # her comment's document


# -- /locate: operators only ----------------------------------------------------------------------


class _Web:
    def json(self, value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return SimpleNamespace(body=value, status=status, headers=headers or {})


def _ask(key: str | None, **query: str) -> Any:
    asked: list[tuple[str, str, str]] = []

    async def fake_locate(subject: str, kind: str, requested_by: str) -> dict[str, Any]:
        asked.append((subject, kind, requested_by))
        return {"report_id": "rep-1", "subject": subject}

    request = SimpleNamespace(headers={"Authorization": f"Bearer {key}"} if key else {}, query=query)
    answer = asyncio.run(web.answer_locate(_Web(), request, _authenticator(), fake_locate))
    answer.asked = asked
    return answer


def test_the_openapi_description_of_locate_is_what_it_answers() -> None:
    """/openapi.json describes /locate's parameters and its report, read from the report's Avro
    schema: a real report validates against it, and one with a field missing or mistyped does not."""
    import jsonschema
    import pytest

    from streams.agents.openapi import openapi_document
    from tests.unit.test_search_api import SCHEMA

    described = openapi_document(SCHEMA)["paths"]["/locate"]["get"]
    assert {p["name"] for p in described["parameters"]} == {"subject", "kind"}  # what answer_locate takes
    report_schema = described["responses"]["200"]["content"]["application/json"]["schema"]
    fake = FakeElasticsearch(aliases={ALIAS: [INDEX]})
    _seed(fake)
    report = _locate(fake).to_json()
    assert report["findings"]
    jsonschema.validate(report, report_schema)
    broken = copy.deepcopy(report)
    del broken["findings"][0]["matches"][0]["why"]
    with pytest.raises(jsonschema.ValidationError, match="'why' is a required property"):
        jsonschema.validate(broken, report_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**report, "located_at": 1733300000000}, report_schema)


def test_locate_is_refused_to_a_search_key_and_without_a_credential() -> None:
    assert _ask(SUPPORT_KEY, subject="ann@example.com").status == 403
    refused = _ask(None, subject="ann@example.com")
    assert refused.status == 401 and "WWW-Authenticate" in refused.headers and refused.asked == []


def test_locate_answers_an_operator_and_checks_the_subject() -> None:
    answer = _ask(OPERATOR_KEY, subject="ann@example.com")
    assert answer.status == 200 and answer.asked == [("ann@example.com", "email", "ops")]
    assert _ask(OPERATOR_KEY, subject="not-an-email").status == 400
    assert _ask(OPERATOR_KEY, subject="ann@example.com", groups="x").status == 400


class _Message:
    def __init__(self, key: bytes, value: bytes | None, partition: int, offset: int) -> None:
        self._key, self._value, self._partition, self._offset = key, value, partition, offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def test_a_tombstoned_dead_letter_is_no_longer_held_but_forget_still_finds_it(monkeypatch: Any) -> None:
    from streams.forget import dead_letters

    def letter(text: str) -> bytes:
        record = {
            "origin_topic": "tickets.public.tickets",
            "origin_partition": 0,
            "origin_offset": 1,
            "key": None,
            "value": text.encode(),
            "stage": "decode",
            "error_type": "DecodeError",
            "error": "truncated",
            "subjects": [],
            "failed_at": datetime.now(UTC),
        }
        return avro.encode("dead_letter", record)

    topic = [
        _Message(b"a", letter("call ann@example.com"), 0, 1),
        _Message(b"b", letter("mail ann@example.com"), 1, 1),
        _Message(b"a", None, 0, 2),  # tombstoned in its own partition
        _Message(b"b", None, 0, 3),  # a tombstone in another partition removes nothing
    ]
    monkeypatch.setattr(dead_letters, "read_whole_topic", lambda *args, **kwargs: iter(topic))
    mentions = lambda text: int("ann@example.com" in text)  # noqa: E731
    held = dead_letters.find_dead_letters(SETTINGS, {"email:x"}, mentions, honour_tombstones=True)
    assert [hit.key for hit in held] == [b"b"]
    assert [hit.key for hit in dead_letters.find_dead_letters(SETTINGS, {"email:x"}, mentions)] == [b"a", b"b"]


def test_forget_takes_a_subject_or_a_report_and_locate_refuses_a_malformed_subject() -> None:
    from click.testing import CliRunner

    from streams.cli import main

    for args in (["forget"], ["forget", "ann@example.com", "--report", "rep-1"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "name a SUBJECT or a --report ID" in result.output, result.output
    refused = CliRunner().invoke(main, ["locate", "not-an-email"])
    assert refused.exit_code == 2 and "is not an email address" in refused.output


def test_locate_covers_every_generation_beside_the_alias_too() -> None:
    from streams.forget.locate import locate_targets

    class Indices:
        async def exists_alias(self, name: str) -> bool:
            return True

        async def get_alias(self, index: str) -> dict[str, Any]:
            return {"streams-chunks-v2": {}}

        async def get(self, index: str, **options: Any) -> dict[str, Any]:
            assert index == "streams-chunks-v*"
            return {"streams-chunks-v1": {}, "streams-chunks-v2": {}, "streams-chunks-v2-scratch": {}}

    client: Any = SimpleNamespace(indices=Indices())
    # v1 is an older generation no alias points at any more: it may still hold her.
    assert asyncio.run(locate_targets(client, "streams-chunks")) == "streams-chunks-v1,streams-chunks-v2"
