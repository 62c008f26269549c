"""`streams eval load --source applications`: how a collection's documents are split between the wiki
and RT, the page titles, the mapping from corpus ids to index document ids (with fake applications),
the read restrictions' SQL, the load record's access groups, and the searches an eval asks as them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.elastic.hybrid_index import SearchPage
from streams.eval import load_applications as apps
from streams.eval.golden_set import CorpusDocument, GoldenSet, GoldenSetError
from streams.eval.load_collection import LoadedCollection
from streams.eval.run_eval import rankings


def doc(doc_id: str, title: str = "", text: str = "some text") -> CorpusDocument:
    return CorpusDocument(doc_id, title, text)


class FakeWiki:
    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str]] = {}
        self.deleted: list[int] = []

    def create_page(self, title: str, text: str, summary: str = "") -> int:
        page = self.pages.get(title, (100 + len(self.pages), ""))[0]
        self.pages[title] = (page, text)
        return page

    def delete_page(self, page_id: int, reason: str = "") -> None:
        from streams.sources.write_applications import ApplicationError

        if page_id in self.deleted:
            raise ApplicationError("MediaWiki API delete: nosuchpageid: There is no page with ID")
        self.deleted.append(page_id)


class FakeTracker:
    def __init__(self) -> None:
        self.queues: list[str] = []
        self.tickets: list[tuple[str, str, str, list[str]]] = []
        self.statuses: dict[int, str] = {}

    def ensure_queue(self, name: str, description: str = "") -> None:
        self.queues.append(name)

    def create_ticket(self, queue: str, subject: str, content: str, requestors: Sequence[str]) -> int:
        self.tickets.append((queue, subject, content, list(requestors)))
        return 7000 + len(self.tickets)

    def set_status(self, ticket: int, status: str) -> None:
        self.statuses[ticket] = status


def test_plan_sends_wiki_and_ticket_documents_and_counts_the_rest() -> None:
    found = apps.plan([doc("wiki:a"), doc("ticket:001"), doc("crm:note-1"), doc("loose"), doc("crm:note-2")])
    assert [d.doc_id for d in found.pages] == ["wiki:a"]
    assert [d.doc_id for d in found.tickets] == ["ticket:001"]
    assert found.skipped == {"crm": 2, "(no kind)": 1}
    assert found.total == 2


def test_page_titles_are_legal_unique_and_name_the_group() -> None:
    titles = apps.page_titles(
        [doc("wiki:x", "pg_dump"), doc("wiki:y", "a [b] | c#d"), doc("wiki:z", ""), doc("wiki:w", "Pg dump")],
        "eval-g",
    )
    assert titles["wiki:x"] == "pg dump (eval-g)"
    assert titles["wiki:y"] == "a b c d (eval-g)"
    assert titles["wiki:z"] == "z (eval-g)"  # no title: the id's name
    # "Pg dump" is the same MediaWiki title as "pg dump" (first letter capitalised): the id disambiguates
    assert titles["wiki:w"] == "Pg dump (w, eval-g)"


def test_load_maps_each_corpus_id_to_the_document_its_application_made() -> None:
    wiki, tracker = FakeWiki(), FakeTracker()
    restricted: list[tuple[list[int], str]] = []
    progress: list[tuple[str, int, int]] = []
    found = apps.plan(
        [doc("wiki:a", "Alpha", "== A ==\nalpha"), doc("ticket:1", "Disk full", "the disk"), doc("wiki:b", "Beta")]
    )
    documents = apps.load(
        found, "eval-g", wiki, tracker, lambda ids, g: restricted.append((ids, g)), lambda *a: progress.append(a)
    )
    assert documents == {
        "wiki:a": f"mediawiki/page/{wiki.pages['Alpha (eval-g)'][0]}",
        "wiki:b": f"mediawiki/page/{wiki.pages['Beta (eval-g)'][0]}",
        "ticket:1": "rt/ticket/7001",
    }
    assert wiki.pages["Alpha (eval-g)"][1] == "== A ==\nalpha"
    assert restricted == [([100, 101], "eval-g")]  # every page restricted to the group
    assert tracker.queues == ["eval-g"]
    assert tracker.tickets == [("eval-g", "Disk full", "the disk", [apps.REQUESTOR])]
    assert progress == [("pages", 2, 2), ("tickets", 1, 1)]


def test_load_refuses_documents_for_an_application_that_is_not_there() -> None:
    found = apps.plan([doc("ticket:1", "Disk full")])
    with pytest.raises(GoldenSetError, match="Request Tracker"):
        apps.load(found, "eval-g", FakeWiki(), None, lambda ids, g: None, lambda *a: None)


def test_restriction_sql_writes_read_restrictions_of_the_group() -> None:
    sql = apps.restriction_sql("mediawiki", [3, 4], "eval-g")
    assert "INSERT INTO `mediawiki`.page_restrictions" in sql
    assert "(3, 'read', 'eval-g', 0, 'infinity'), (4, 'read', 'eval-g', 0, 'infinity')" in sql
    assert apps.restriction_sql("mediawiki", [], "eval-g") == ""
    with pytest.raises(GoldenSetError):
        apps.restriction_sql("mediawiki", [3], "x'; DROP TABLE page; --")


def test_the_load_record_keeps_its_access_groups(tmp_path: Path) -> None:
    LoadedCollection(
        "eval-g", "applications", {"wiki:a": "mediawiki/page/3"}, tuple(apps.access_groups("eval-g"))
    ).save(tmp_path)
    loaded = LoadedCollection.read(tmp_path, "eval-g")
    assert loaded.search_groups == ["mediawiki-group:eval-g", "queue:eval-g"]
    # a record of the tickets source has none: its group is the access group
    LoadedCollection("eval-t", "tickets", {"d": "tickets/ticket/1"}).save(tmp_path)
    assert LoadedCollection.read(tmp_path, "eval-t").search_groups == ["eval-t"]


def test_an_eval_of_an_applications_load_searches_as_its_access_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []

    class Hit:
        def __init__(self, document_id: str) -> None:
            self.document_id = document_id

    async def fake_search(
        client: Any, index: str, text: str, vector: Any, k: int, sources: Any, groups: Any, **kw: Any
    ) -> SearchPage:
        asked.append(groups)
        return SearchPage([Hit("mediawiki/page/3"), Hit("rt/ticket/9"), Hit("mediawiki/page/99")], 0)  # type: ignore[list-item]

    monkeypatch.setattr("streams.eval.run_eval.search_page", fake_search)
    loaded = LoadedCollection(
        "eval-g",
        "applications",
        {"wiki:a": "mediawiki/page/3", "ticket:1": "rt/ticket/9"},
        ("mediawiki-group:eval-g", "queue:eval-g"),
    )
    golden = GoldenSet(Path("."), {"q": "alpha"}, {"q": {"wiki:a": 1}})
    ranked = asyncio.run(rankings(None, "idx", golden, {"q": [0.0]}, loaded, ["bm25"]))  # type: ignore[arg-type]
    assert asked == [["mediawiki-group:eval-g", "queue:eval-g"]]
    assert ranked == {"bm25": {"q": ["wiki:a", "ticket:1"]}}  # back to corpus ids; outside the load dropped


def test_unload_deletes_an_earlier_loads_pages_and_tickets_the_applications_way() -> None:
    wiki, tracker, advanced = FakeWiki(), FakeTracker(), []
    wiki.deleted.append(101)  # deleted by hand since: passed over
    made = {"wiki:a": "mediawiki/page/100", "wiki:b": "mediawiki/page/101", "ticket:1": "rt/ticket/7001"}
    deleted = apps.unload(made, wiki, tracker, lambda *a: advanced.append(a))
    assert sorted(deleted) == ["mediawiki/page/100", "mediawiki/page/101", "rt/ticket/7001"]
    assert wiki.deleted == [101, 100] and tracker.statuses[7001] == "deleted"
    assert advanced == [("pages deleted", 2, 2), ("tickets deleted", 1, 1)]


def test_unload_refuses_when_an_application_that_made_them_is_not_there() -> None:
    with pytest.raises(GoldenSetError, match="made 1 tickets, and Request Tracker is not among the applications"):
        apps.unload({"ticket:1": "rt/ticket/7001"}, FakeWiki(), None, lambda *a: None)


def test_load_applications_names_the_missing_applications_and_how_to_replace_a_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.eval.commands import eval_

    (tmp_path / "corpus.jsonl").write_text('{"_id": "wiki:a", "title": "A", "text": "alpha"}\n')
    runner = CliRunner()
    LoadedCollection("eval-g", apps.SOURCE, {"wiki:z": "mediawiki/page/9"}).save(tmp_path)
    result = runner.invoke(eval_, ["load", str(tmp_path), "--source", "applications", "--group", "eval-g"])
    assert result.exit_code == 1 and "--replace deletes it, or load into a new group" in result.output
    monkeypatch.setenv("STREAMS_STACK_APPS", "")
    from streams.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(
            eval_, ["load", str(tmp_path), "--source", "applications", "--group", "eval-g", "--replace"]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "STREAMS_STACK_APPS does not name mediawiki" in result.output


def test_a_failing_application_leaves_what_it_made_recorded_and_restricted() -> None:
    class FailingWiki(FakeWiki):
        def create_page(self, title: str, text: str, summary: str = "") -> int:
            if len(self.pages) == 1:
                raise GoldenSetError("MediaWiki went away")
            return super().create_page(title, text, summary)

    restricted: list[list[int]] = []
    documents: dict[str, str] = {}
    found = apps.plan([doc("wiki:a", "Alpha"), doc("wiki:b", "Beta")])
    with pytest.raises(GoldenSetError, match="went away"):
        apps.load(
            found, "eval-g", FailingWiki(), None, lambda ids, g: restricted.append(ids), lambda *a: None, documents
        )
    assert documents == {"wiki:a": "mediawiki/page/100"}
    assert restricted == [[100]]
