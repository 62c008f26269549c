"""Only who may see: the worker's /search, through the real stack, with planted documents in all three sources.

A caller's groups come from its credential (the local stack's `local-support` key grants `support`); a group
removed at the source leaves that caller's results within the freshness wait, re-embeds nothing, and a
search running while the change lands never shows the document once the index has confirmed the change.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from streams.settings import Settings, get_settings
from streams.sources import edits
from streams.sources.connect import connect_postgres
from tests.integration.helpers import (
    SUPPORT,
    document_chunks,
    embedded_since_marked,
    es_client,
    hybrid,
    mark_vectors,
    metrics_text,
    search_api,
    search_key,
    unique,
    visible_chunks,
    wait_until,
)

pytestmark = pytest.mark.integration

FRESHNESS_WAIT_S = 30.0  # "within seconds": generous for a shared two-core machine, far below a re-sync


@dataclass(frozen=True)
class Planted:
    document_id: str
    groups: tuple[str, ...]
    private_word: str  # only this document contains it
    set_groups: Callable[[list[str]], None]  # change the groups at the source


def es_index() -> str:
    return get_settings().index_alias


def _email(tag: str) -> str:
    return f"{tag}.{unique('p')}@example.com"


def _set_contact_groups(settings: Settings, contact_id: int, groups: list[str]) -> None:
    with connect_postgres(settings.dsn("crm"), name="crm") as conn:
        conn.execute("UPDATE contacts SET access_groups = %s WHERE id = %s", (groups, contact_id))


def _plant(settings: Settings, shared: str, source: str, groups: list[str]) -> Planted:
    """One document of `source` that contains `shared` and a word of its own, in `groups`."""
    private = unique()
    if source == "tickets":
        ticket_id = edits.add_ticket(
            f"Printer {shared} {private}", f"The printer shows {shared} and {private}.", _email("req"), groups
        )
        return Planted(
            f"tickets/ticket/{ticket_id}", tuple(groups), private, lambda g: edits.set_ticket_groups(ticket_id, g)
        )
    if source == "note":
        contact_id = edits.add_contact("Ada", unique("n").title(), _email("contact"), ["sales"])
        note_id = edits.add_note(
            contact_id, _email("rep"), f"Call about {shared}, then {private}.", title="Call", groups=groups
        )
        return Planted(f"crm/note/{note_id}", tuple(groups), private, lambda g: edits.update_note(note_id, groups=g))
    if source == "contact":
        contact_id = edits.add_contact(
            "Bo", unique("n").title(), _email("contact"), groups, title=f"{shared} {private}"
        )
        return Planted(
            f"crm/contact/{contact_id}", tuple(groups), private, lambda g: _set_contact_groups(settings, contact_id, g)
        )
    assert source == "wiki"
    page_id = edits.new_wiki_page(
        f"Runbook {unique('t')}", f"== Setup ==\n\nRestart {shared} then {private}.", groups, _email("author")
    )
    return Planted(f"wiki/page/{page_id}", tuple(groups), private, lambda g: edits.set_wiki_page_groups(page_id, g))


def _operator_ids(word: str) -> set[str]:
    return {hit["document_id"] for hit in hybrid(word, k=50)["hits"]}


def _support(word: str, **params: str) -> dict[str, Any]:
    status, _, body = search_api({"q": word, "k": "50", **params}, f"Bearer {search_key(SUPPORT)}")
    assert status == 200, body
    return body


def _support_ids(word: str) -> set[str]:
    return {hit["document_id"] for hit in _support(word)["hits"]}


def _wait_indexed(planted: list[Planted], word: str) -> None:
    wanted = {p.document_id for p in planted}
    assert wait_until(lambda: wanted <= _operator_ids(word)), f"not all planted documents were indexed: {wanted}"


# -- the credential ---------------------------------------------------------------------------------


def test_search_without_or_with_a_bad_credential_is_401(worker: Settings) -> None:
    for authorization in (None, "Bearer not-a-key-of-this-stack", "Basic c3VwcG9ydDpzdXBwb3J0"):
        status, headers, body = search_api({"q": "printer"}, authorization)
        assert status == 401, (authorization, status, body)
        assert headers.get("WWW-Authenticate", "").startswith("Bearer"), headers
        assert body.get("error") in ("invalid_request", "invalid_token") and body.get("error_description")
        assert "hits" not in body
    # /metrics stays open on loopback (metrics_text raises on a 401).
    assert "streams_chunks_embedded_total" in metrics_text()


# -- a support token never returns, counts or highlights a chunk outside support --------------------


def _assert_only_support(es: Any, answer: dict[str, Any], hidden: list[Planted]) -> None:
    """No hit, chunk, highlight or count in `answer` comes from outside support."""
    text = json.dumps(answer["hits"])  # the hits, not the echoed query
    for planted in hidden:
        assert planted.document_id not in text and planted.private_word not in text, planted
    chunk_ids = [chunk["chunk_id"] for hit in answer["hits"] for chunk in hit["chunks"]]
    if not chunk_ids:
        return
    es.indices.refresh(index=es_index())
    found = es.search(index=es_index(), query={"ids": {"values": chunk_ids}}, size=len(chunk_ids), source=["groups"])
    groups = {hit["_id"]: hit["_source"]["groups"] for hit in found["hits"]["hits"]}
    outside = {chunk_id: groups.get(chunk_id) for chunk_id in chunk_ids if "support" not in groups.get(chunk_id, [])}
    assert not outside, f"chunks outside support in a support answer: {outside}"


def test_a_support_token_sees_only_support_in_every_source(worker: Settings) -> None:
    shared = unique()
    visible = [_plant(worker, shared, s, ["support"]) for s in ("tickets", "note", "contact", "wiki")]
    visible.append(_plant(worker, shared, "tickets", ["billing", "support"]))
    hidden = [
        _plant(worker, shared, "tickets", ["billing"]),
        _plant(worker, shared, "note", ["sales"]),
        _plant(worker, shared, "contact", ["sales"]),
        _plant(worker, shared, "wiki", ["engineering"]),
    ]
    _wait_indexed(visible + hidden, shared)

    es = es_client(worker)
    answer = _support(shared)
    assert answer["caller"] == "local-support" and answer["groups"] == ["support"]
    # kNN always brings some nearest support documents too: the planted ones must be among the hits.
    assert {p.document_id for p in visible} <= {hit["document_id"] for hit in answer["hits"]}
    _assert_only_support(es, answer, hidden)
    # A hidden document's own word does not find it, and groups= cannot widen the view: a group the
    # credential does not hold is refused by name.
    for planted in hidden:
        mine = _support(planted.private_word)
        _assert_only_support(es, mine, hidden)
        status, _, refused = search_api(
            {"q": planted.private_word, "groups": ",".join([*planted.groups, "support"])},
            f"Bearer {search_key(SUPPORT)}",
        )
        assert status == 400 and f"unknown group {planted.groups[0]!r}" in refused["error"], refused
    status, _, refused = search_api({"q": shared, "groups": "billing"}, f"Bearer {search_key(SUPPORT)}")
    assert (status, refused["error"]) == (400, "unknown group 'billing': this credential holds support")
    assert _support(shared, groups="support")["groups"] == ["support"]
    # The operator still sees everything (so the checks above are not vacuous).
    assert {p.document_id for p in visible + hidden} <= _operator_ids(shared)


# -- a removed group disappears within the freshness wait, and re-embeds nothing ----------------------


@pytest.mark.parametrize("source", ["tickets", "note", "contact", "wiki"])
def test_a_removed_group_disappears_and_embeds_nothing(worker: Settings, source: str) -> None:
    es = es_client(worker)
    shared = unique()
    planted = _plant(worker, shared, source, ["support", "billing"])
    _wait_indexed([planted], shared)
    assert wait_until(lambda: planted.document_id in _support_ids(planted.private_word)), "support never saw it"
    hashes_before = {c["_id"]: c["text_hash"] for c in visible_chunks(es, planted.document_id)}
    marks = mark_vectors(es, planted.document_id)

    for attempt, groups in enumerate((["billing"], ["support", "billing"], ["billing"])):
        changed_at = time.monotonic()
        planted.set_groups(groups)
        expect_visible = "support" in groups
        shown = wait_until(
            lambda: (planted.document_id in _support_ids(planted.private_word)) == expect_visible,  # noqa: B023
            timeout=FRESHNESS_WAIT_S,
        )
        took = time.monotonic() - changed_at
        assert shown, f"attempt {attempt}: support visibility is not {expect_visible} after {took:.1f}s"
        chunks = visible_chunks(es, planted.document_id)
        assert chunks and all(sorted(c["groups"]) == sorted(groups) for c in chunks), (attempt, chunks)
        assert {c["_id"]: c["text_hash"] for c in chunks} == hashes_before, "a groups change rewrote the text"
        embedded = embedded_since_marked(es, planted.document_id, marks)
        assert embedded == [], f"attempt {attempt}: a groups change embedded {embedded}"
    assert planted.document_id not in _support_ids(shared)


# -- the race: a search running while a document loses its group -----------------------------------


@dataclass(frozen=True)
class Observation:
    started: float  # time.monotonic() just before the request was sent
    document_ids: frozenset[str]


def test_no_result_after_the_index_confirms_a_removed_group(worker: Settings) -> None:
    es = es_client(worker)
    shared = unique()
    target = _plant(worker, shared, "tickets", ["support", "billing"])
    neighbour = _plant(worker, shared, "wiki", ["support"])  # stays visible: the loop keeps finding something
    _wait_indexed([target, neighbour], shared)
    assert wait_until(lambda: {target.document_id, neighbour.document_id} <= _support_ids(shared))

    observations: list[Observation] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                ids = frozenset(_support_ids(shared))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                return
            observations.append(Observation(started, ids))

    loop = threading.Thread(target=search_loop, daemon=True)
    loop.start()
    try:
        wait_until(lambda: len(observations) >= 3, timeout=60)
        target.set_groups(["billing"])

        def index_confirms() -> bool:
            chunks = [c for c in document_chunks(es, target.document_id) if c.get("visible")]  # refreshes first
            return bool(chunks) and all("support" not in c["groups"] for c in chunks)

        assert wait_until(index_confirms, timeout=FRESHNESS_WAIT_S), "the index never dropped support"
        confirmed_at = time.monotonic()
        wait_until(lambda: sum(o.started > confirmed_at for o in observations) >= 10, timeout=60)
    finally:
        stop.set()
        loop.join(timeout=120)
    assert not errors, errors

    before = [o for o in observations if o.started < confirmed_at]
    after = [o for o in observations if o.started > confirmed_at]
    assert before and any(target.document_id in o.document_ids for o in before), "the loop never saw the target"
    assert len(after) >= 10, f"only {len(after)} searches ran after the change was confirmed"
    leaked = [o for o in after if target.document_id in o.document_ids]
    assert not leaked, f"{len(leaked)} of {len(after)} searches after the confirmation still returned the target"
    assert all(neighbour.document_id in o.document_ids for o in after)
