"""The source owner erases a person with the applications' own tools, and the index follows, with no
`streams forget`: in MediaWiki 1.39 the account is renamed by the Renameuser extension's renameUser.php,
its e-mail address cleared by deleteUserEmail.php and its real name by MediaWiki's User class (eval.php);
in Request Tracker 5, rt-shredder wipes the ticket the person requested and then the person, whose Cc
membership RT deletes with them. Afterwards the page and the Cc ticket stay searchable without naming the
person, the shredded ticket is gone, and `streams locate` finds nothing of them. A variant leaves one
owner step out (the e-mail address stays in MediaWiki) and shows the same check naming what is left.
Nothing here writes the applications' tables but their own tools (docs/forgetting.md, "When the source
owner erases a person"). On the whole local stack; skipped unless STREAMS_STACK_APPS names both
applications."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from streams.records import subject_identifier
from streams.settings import Settings
from streams.sources.seed_applications import account_password
from streams.sources.write_applications import RtApi, WikiApi
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import QUEUE, RequestTracker
from tests.applications.helpers import NEEDS_WIKI_AND_RT, document_texts
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import (
    es_client,
    found_documents,
    hybrid,
    matched_document_ids,
    state_record,
    unique,
    wait_until,
)
from tests.integration.test_migrate import cli

pytestmark = NEEDS_WIKI_AND_RT
WAIT_S = 180.0


def _subjects(document_id: str) -> set[str]:
    return set((state_record(es_client(), document_id) or {}).get("subjects") or [])


def _part_subjects(document_id: str, part: str) -> set[str]:
    parts = (state_record(es_client(), document_id) or {}).get("parts") or {}
    return {s for part_id, state in parts.items() if part_id.split("/")[0] == part for s in state.get("subjects") or []}


def _gone(document_id: str) -> bool:
    """No chunk of the document is left, and its state record is gone or a delete marker (which keeps
    only versions, so that a replay stays stale)."""
    state = state_record(es_client(), document_id)
    deleted = state is None or (bool((state.get("root") or {}).get("deleted")) and not state.get("subjects"))
    return deleted and not document_texts(document_id)


def _located(subject: str, kind: str) -> list[dict[str, Any]]:
    """What `streams locate` finds about the subject (its findings: chunks, state records, dead letters)."""
    out = cli("locate", subject, "--kind", kind, "--json").stdout
    findings: list[dict[str, Any]] = json.loads(out[out.index("{") :])["findings"]
    return findings


def _still_named(document_id: str, identifiers: set[str], written: list[str]) -> list[str]:
    """How the document's index entries still name the person: an identifier among its subjects (the
    state record's, which holds its parts' people), or a way they are written in its chunks' text."""
    left = sorted(identifiers & _subjects(document_id))
    text = document_texts(document_id).casefold()
    return left + [form for form in written if form.casefold() in text]


def _followed(started: float, done: float, what: str) -> None:
    """How long the owner's commands took, and how long after the last the index had followed (printed
    for the docs with pytest -s; never asserted)."""
    print(
        f"\n{what}: the commands took {done - started:.1f} s, the index followed {time.monotonic() - done:.1f} s later"
    )


@pytest.mark.parametrize("steps", ["all", "email-kept"])
def test_the_index_follows_a_mediawiki_erasure(worker: Settings, steps: str) -> None:  # noqa: F811
    wiki = MediaWiki(worker)
    token = unique("")[:12]
    user, real_name, email = f"Ilse{token.title()}", f"Ilse Q{token}", f"ilse.{token}@example.com"
    wiki.create_user(user, account_password(wiki.credentials()["admin_password"], user), email=email)
    wiki.set_real_name(user, real_name)  # createAndPromote.php sets none
    word, title = unique(), f"Notes {unique('t')}"
    wiki.edit_page(title, f"== Findings ==\n\nThe {word} cache was tuned by hand.", user, summary="notes")
    with WikiApi(wiki.api_url) as api:
        page = f"mediawiki/page/{api.page(title)['pageid']}"
        user_id = api._call("GET", action="query", list="users", ususers=user)["query"]["users"][0]["userid"]
    account = f"mediawiki/user/{user_id}"
    old = {
        subject_identifier("email", email),
        subject_identifier("mediawiki_user", user),
        subject_identifier("name", real_name),
    }
    # The text and the authors are parts of their own, read by triggers of their own: wait for both.
    indexed = wait_until(
        lambda: old <= _part_subjects(page, "authors") and page in found_documents(es_client(), word), timeout=WAIT_S
    )
    assert indexed, f"{page} was never indexed with its author: {_part_subjects(page, 'authors')}"

    # The owner's erasure, as they would type it on their wiki's server.
    new = f"Vanished user {token}"
    started = time.monotonic()
    assert "successfully renamed" in wiki.rename_user(user, new, reason="erasure request")
    if steps == "all":
        wiki.maintenance("deleteUserEmail", new)
    wiki.set_real_name(new, "")
    done = time.monotonic()
    renamed = subject_identifier("mediawiki_user", new)

    def caught_up() -> bool:
        authors = _part_subjects(page, "authors")
        return renamed in authors and subject_identifier("name", real_name) not in authors

    assert wait_until(caught_up, timeout=WAIT_S, interval=0.1), (
        f"the rename never reached {page}: {_part_subjects(page, 'authors')}"
    )
    if steps == "email-kept":
        # The check names what the owner left: the page's author still has the address.
        assert _still_named(page, old, [user, real_name, email]) == [subject_identifier("email", email)]
        assert any(f["document_id"] == page for f in _located(email, "email")), "locate does not find the page"
        return

    followed = wait_until(lambda: not _still_named(page, old, [user, real_name, email]), WAIT_S, interval=0.1)
    _followed(started, done, "renameUser.php, deleteUserEmail.php, eval.php")
    assert followed, f"{page} still names them: {_still_named(page, old, [user, real_name, email])}"
    assert _part_subjects(page, "authors") == {renamed}, _part_subjects(page, "authors")
    assert page in found_documents(es_client(), word), "the page's text is the wiki's to keep, and it went"
    # The account's identity record follows the rename: only the new name is left to know it by.
    assert wait_until(lambda: _subjects(account) == {renamed}, timeout=WAIT_S), _subjects(account)
    for subject, kind in ((email, "email"), (user, "mediawiki_user"), (real_name, "name")):
        assert _located(subject, kind) == [], f"locate still finds {kind} {subject}"
        assert page not in matched_document_ids(subject), f"/search still matches the page by {subject}"


def test_the_index_follows_an_rt_shredding(worker: Settings, tmp_path: Path) -> None:  # noqa: F811
    rt = RequestTracker(worker)
    credentials = rt.credentials()
    token = unique("")[:12]
    name, real_name, email = f"ilse.{token}", f"Ilse R{token}", f"ilse.{token}@example.com"
    with RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]) as admin:
        admin.create_user(name, email, real_name, account_password(credentials["admin_password"], name), False)
        other = f"Otto Other <other.{unique('o')}@example.com>"
        w_req, w_cc = unique(), unique()
        requested = admin.create_ticket(QUEUE, f"Access {w_req}", f"Please grant {w_req} access.", [email])
        cc = admin.create_ticket(QUEUE, f"Printer {w_cc}", f"The {w_cc} printer jams.", [other], cc=[email])
        account = f"rt/user/{admin._call('GET', f'/user/{name}')['id']}"
    requested_doc, cc_doc = f"rt/ticket/{requested}", f"rt/ticket/{cc}"
    old = {
        subject_identifier("email", email),
        subject_identifier("rt_user", name),
        subject_identifier("name", real_name),
    }
    es = es_client()
    for document_id, part, word in ((requested_doc, "requestors", w_req), (cc_doc, "people", w_cc)):
        indexed = wait_until(
            lambda d=document_id, p=part, w=word: old <= _part_subjects(d, p) and d in found_documents(es, w),
            timeout=WAIT_S,
        )
        assert indexed, f"{document_id} was never indexed with them in {part}: {_part_subjects(document_id, part)}"
    assert wait_until(lambda: old <= _subjects(account), timeout=WAIT_S), f"{account} was never indexed"

    # The owner shreds the ticket the person requested, then the person (their Cc membership with them).
    started = time.monotonic()
    rt.shred(f"Tickets=query,id = {requested}", tmp_path / "ticket.sql")
    done = time.monotonic()
    gone = wait_until(lambda: _gone(requested_doc), timeout=WAIT_S, interval=0.1)
    _followed(started, done, "rt-shredder, Tickets plugin")
    assert gone, f"{requested_doc} outlived its shredding: {state_record(es, requested_doc)}"
    assert requested_doc not in found_documents(es, w_req)
    assert requested_doc not in {hit["document_id"] for hit in hybrid(w_req, k=50)["hits"]}

    started = time.monotonic()
    rt.shred(f"Users=name,{name};status,any;replace_relations,Nobody", tmp_path / "user.sql")
    done = time.monotonic()
    followed = wait_until(lambda: not _still_named(cc_doc, old, [real_name, email]), WAIT_S, interval=0.1)
    _followed(started, done, "rt-shredder, Users plugin")
    assert followed, f"{cc_doc} still names them: {_still_named(cc_doc, old, [real_name, email])}"
    assert not old & _part_subjects(cc_doc, "people"), _part_subjects(cc_doc, "people")
    assert cc_doc in found_documents(es, w_cc), "the Cc ticket is RT's to keep, and it went"
    assert wait_until(lambda: not _subjects(account), timeout=WAIT_S), f"{account} outlived its shredding"
    for subject, kind in ((email, "email"), (name, "rt_user"), (real_name, "name")):
        assert _located(subject, kind) == [], f"locate still finds {kind} {subject}"
