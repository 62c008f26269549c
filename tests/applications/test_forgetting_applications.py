"""`streams forget` for people of the real applications: one person edits a MediaWiki page as their own
account and is Requestor, Cc and Owner of Request Tracker tickets written through RT's REST 2 API, and
is only mentioned in the text of one more ticket. Forgetting them by e-mail address, by user name or by
real name finds all of it through the applications' user records (identity records): the ticket they
requested is removed (it is about them); the page they edited and the tickets where they are Cc and
Owner stay searchable without them; the ticket that mentions them is redacted. The receipt lists each,
search finds none of it by the person afterwards, and the identity records are gone. On the whole local
stack; skipped unless STREAMS_STACK_APPS names both applications."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from streams.settings import PROJECT_ROOT, Settings
from streams.sources.seed_applications import account_password
from streams.sources.write_applications import RtApi, WikiApi
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import QUEUE, RequestTracker
from tests.applications.helpers import NEEDS_WIKI_AND_RT
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import es_client, found_documents, hybrid, state_record, unique, wait_until

pytestmark = NEEDS_WIKI_AND_RT
WAIT_S = 180.0


@dataclass
class Written:
    email: str
    real_name: str
    wiki_user: str
    rt_user: str
    words: dict[str, str]  # document id -> a word only that document contains (removed)
    kept: dict[str, str]  # documents they took part in, kept without them (page, Cc, Owner)
    mention: tuple[str, str]  # the ticket that only mentions the person, and its own word (redacted)
    identity_records: list[str]


def _write_person(settings: Settings) -> Written:
    token = unique("")
    first, surname = "Ilse", f"Q{token[:12]}"
    real_name = f"{first} {surname}"
    email = f"ilse.{token[:12]}@example.com"
    wiki_name = f"Ilse{token[:12].title()}"
    rt_name = email.split("@", 1)[0]
    words = {}

    wiki = MediaWiki(settings)
    password = account_password(wiki.credentials()["admin_password"], wiki_name)
    wiki.create_user(wiki_name, password, email=email)
    w_page = unique()
    title = f"Notes {unique('t')}"
    with WikiApi(wiki.api_url) as api:
        api.login(wiki_name, password)
        api.edit(title, f"== Findings ==\n\nThe {w_page} cache was tuned by hand.", summary="notes")
        page = api.page(title)
        user_id = api._call("GET", action="query", list="users", ususers=wiki_name)["query"]["users"][0]["userid"]
    kept = {f"mediawiki/page/{page['pageid']}": w_page}

    rt = RequestTracker(settings)
    credentials = rt.credentials()
    rt_password = account_password(credentials["admin_password"], rt_name)
    with RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]) as admin:
        admin.create_user(rt_name, email, real_name, rt_password)
        other = f"Otto Other <other.{unique('o')}@example.com>"
        w_req, w_cc, w_owner, w_mention = unique(), unique(), unique(), unique()
        requestor = admin.create_ticket(
            QUEUE, f"Access {w_req}", f"Please grant {w_req} access.", [real_name + f" <{email}>"]
        )
        cc = admin.create_ticket(QUEUE, f"Printer {w_cc}", f"The {w_cc} printer jams.", [other], cc=[email])
        owned = admin.create_ticket(QUEUE, f"Disk {w_owner}", f"The {w_owner} disk is full.", [other], owner=rt_name)
        mentioned = admin.create_ticket(
            QUEUE, f"Laptop {w_mention}", f"The {w_mention} laptop: {real_name} ({email}) knows more.", [other]
        )
        rt_user_id = admin._call("GET", f"/user/{rt_name}")["id"]
    words[f"rt/ticket/{requestor}"] = w_req
    kept.update({f"rt/ticket/{cc}": w_cc, f"rt/ticket/{owned}": w_owner})
    mention = (f"rt/ticket/{mentioned}", w_mention)
    identity = [f"rt/user/{rt_user_id}", f"mediawiki/user/{user_id}"]
    written = Written(email, real_name, wiki_name, rt_name, words, kept, mention, identity)

    es = es_client()
    for document_id, word in [*written.words.items(), *written.kept.items(), mention]:
        assert wait_until(lambda d=document_id, w=word: d in found_documents(es, w), timeout=WAIT_S), (
            f"{document_id} was never indexed"
        )
    subject = f"email:{email}"
    for document_id in [*written.words, *written.kept]:  # their role in it indexed too, not only its text
        assert wait_until(lambda d=document_id: subject in _subjects(es, d), timeout=WAIT_S), (
            f"{document_id} was never indexed as about {subject}: {_subjects(es, document_id)}"
        )
    for record in identity:
        assert wait_until(lambda r=record: state_record(es, r) is not None, timeout=WAIT_S), f"{record} never indexed"
    return written


def _subjects(es: Any, document_id: str) -> list[str]:
    return list((state_record(es, document_id) or {}).get("subjects") or [])


def _forget(subject: str, kind: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "forget",
            subject,
            "--kind",
            kind,
            "--wait",
            "--json",
            "--timeout",
            "240",
        ],
        env=dict(os.environ),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    receipt: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{") :])
    return receipt


@pytest.mark.parametrize("kind", ["email", "rt_user", "mediawiki_user", "name"])
def test_forget_finds_a_person_of_the_applications(worker: Settings, kind: str) -> None:  # noqa: F811
    person = _write_person(worker)
    subject = {"email": person.email, "rt_user": person.rt_user, "mediawiki_user": person.wiki_user}.get(
        kind, person.real_name
    )
    receipt = _forget(subject, kind)
    assert receipt["status"] == "unsearchable", receipt
    assert f"email:{person.email}" in receipt["identifiers"], receipt["identifiers"]
    removed = {d for r in receipt["removed"] for d in r["document_ids"]}
    assert set(person.words) <= removed, (sorted(person.words), sorted(removed))
    assert not set(person.kept) & removed, (sorted(person.kept), sorted(removed))
    redacted = {d for r in receipt["redacted"] for d in r["document_ids"]}
    assert {person.mention[0], *person.kept} <= redacted, (person.mention, sorted(person.kept), sorted(redacted))

    es = es_client()
    es.indices.refresh(index=worker.index_alias)
    for document_id, word in person.words.items():
        assert document_id not in found_documents(es, word), f"BM25 still finds {document_id}"
        assert document_id not in {h["document_id"] for h in hybrid(word, k=50)["hits"]}, document_id
    # The page and the tickets they took part in stay searchable, and none names them any more.
    identifiers = set(receipt["identifiers"])
    for document_id, word in person.kept.items():
        assert document_id in found_documents(es, word), f"{document_id} was removed"
        assert not identifiers & set(_subjects(es, document_id)), (document_id, _subjects(es, document_id))
    # The ticket that only mentioned them is still found by its own word, without their name or address.
    mention_id, mention_word = person.mention
    assert mention_id in found_documents(es, mention_word)
    text = json.dumps(hybrid(mention_word, k=50)["hits"])
    assert person.email not in text and person.real_name not in text, text
    for term in (person.email, person.real_name):
        assert not {h["document_id"] for h in hybrid(term, k=50)["hits"]} & set(person.words)
    for record in person.identity_records:
        # Gone, or kept only as a suppressed delete marker (its versions, so that replays stay stale).
        left = state_record(es, record)
        assert left is None or (left["root"]["deleted"] and left["root"]["suppressed"]), left
        written = json.dumps(left or {}).casefold()
        assert person.email not in written and person.real_name.casefold() not in written, left
