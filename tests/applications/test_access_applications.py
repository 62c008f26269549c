"""Who may see follows the applications: a ticket is in its RT queue's group (`queue:<name>`) and in
every RT group that RT's ACL lets see it (`rt-group:<name>`), and a wiki page in its namespace's
(`namespace:<n>`), so through the worker's /search a caller holding another queue's, group's or
namespace's group does not see it, and a caller holding its group does; a right granted or revoked in
RT changes who sees the tickets it covers. Content written through RT's REST 2 API and MediaWiki's
action API, rights through RT's own API; callers are HS256 JWTs carrying their groups. On the whole
local stack; skipped unless STREAMS_STACK_APPS names both applications."""

from __future__ import annotations

import os
import time

import jwt
import pytest

from streams.settings import Settings, get_settings
from streams.sources.seed_applications import account_password
from streams.sources.write_applications import RtApi, WikiApi
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import QUEUE, RequestTracker
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import es_client, found_documents, search_api, unique, wait_until

# The worker the pytest run starts accepts JWTs signed with this secret (a worker started before without
# it refuses them, which the test says).
JWT_SECRET = os.environ.setdefault("STREAMS_SEARCH_JWT_SECRET", "applications-access-test-secret-0123456789")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not {"mediawiki", "request-tracker"} <= set(get_settings().stack_apps),
        reason="STREAMS_STACK_APPS does not name mediawiki and request-tracker",
    ),
]
WAIT_S = 180.0


def _token(groups: list[str]) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "access-test", "groups": groups, "iat": now, "exp": now + 600}, JWT_SECRET, "HS256")


def _seen(word: str, groups: list[str]) -> set[str]:
    status, _, body = search_api({"q": word, "k": "50"}, f"Bearer {_token(groups)}")
    assert status == 200, f"/search answered {status} to a JWT (was the worker started without the secret?): {body}"
    return {hit["document_id"] for hit in body["hits"]}


def test_search_follows_rt_queues_and_wiki_namespaces(worker: Settings) -> None:  # noqa: F811
    rt = RequestTracker(worker)
    credentials = rt.credentials()
    restricted = f"Restricted{unique('q')}"
    word_general, word_restricted = unique(), unique()
    with RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]) as admin:
        admin._call("POST", "/queue", {"Name": restricted, "Description": "a queue only its group sees"})
        requestor = [f"Rhea Requestor <rhea.{unique('r')}@example.com>"]
        general = admin.create_ticket(QUEUE, f"Badge {word_general}", f"The {word_general} badge.", requestor)
        private = admin.create_ticket(
            restricted, f"Payroll {word_restricted}", f"The {word_restricted} run.", requestor
        )

    wiki = MediaWiki(worker)
    name = f"Wanda{unique('w').title()}"
    password = account_password(wiki.credentials()["admin_password"], name)
    wiki.create_user(name, password, email=f"wanda.{unique('m')}@example.com")
    word_main, word_user = unique(), unique()
    with WikiApi(wiki.api_url) as api:
        api.login(name, password)
        api.edit(f"Guide {unique('t')}", f"The {word_main} guide.", summary="guide")
        api.edit(f"User:{name}/Notes", f"My {word_user} notes.", summary="notes")

    es = es_client()
    cases = {
        word_general: (f"rt/ticket/{general}", f"queue:{QUEUE}", f"queue:{restricted}"),
        word_restricted: (f"rt/ticket/{private}", f"queue:{restricted}", f"queue:{QUEUE}"),
        word_user: (None, "namespace:2", "namespace:0"),
        word_main: (None, "namespace:0", "namespace:2"),
    }
    for word, (document_id, right, wrong) in cases.items():
        assert wait_until(lambda w=word: found_documents(es, w), timeout=WAIT_S), f"{word} was never indexed"
        ids = found_documents(es, word)
        document = document_id or next(iter(ids))
        assert document in ids, (word, ids)
        assert document in _seen(word, [right]), f"a caller of {right} does not see {document}"
        assert document not in _seen(word, [wrong]), f"a caller of {wrong} sees {document}"
        assert document not in _seen(word, ["support"]), f"a caller of support sees {document}"


def test_search_follows_the_rights_rt_grants_and_revokes(worker: Settings) -> None:  # noqa: F811
    rt = RequestTracker(worker)
    credentials = rt.credentials()
    queue, viewers, auditors = f"Legal{unique('q')}", f"Counsel{unique('g')}", f"Auditors{unique('g')}"
    word = unique()
    with RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]) as admin:
        admin.create_queue(queue, "a queue whose tickets only the groups granted ShowTicket see")
        admin.create_group(viewers, "may see the queue's tickets")
        admin.create_group(auditors, "may see every ticket")
        ticket = admin.create_ticket(
            queue, f"Contract {word}", f"The {word} clause.", [f"lee.{unique('r')}@example.com"]
        )
    document = f"rt/ticket/{ticket}"
    es = es_client()
    assert wait_until(lambda: document in found_documents(es, word), timeout=WAIT_S), f"{document} was never indexed"

    def seen_by(group: str) -> bool:
        return document in _seen(word, [f"rt-group:{group}"])

    # The check can fail: before any grant, neither group sees the ticket (only its queue's group does).
    assert document in _seen(word, [f"queue:{queue}"])
    assert not seen_by(viewers) and not seen_by(auditors)

    rt.set_right(viewers, "ShowTicket", queue)
    assert wait_until(lambda: seen_by(viewers), timeout=WAIT_S), f"{viewers} granted ShowTicket on {queue} does not see"
    assert not seen_by(auditors), f"{auditors}, granted nothing, sees {document}"
    rt.set_right(viewers, "ShowTicket", queue, granted=False)
    assert wait_until(lambda: not seen_by(viewers), timeout=WAIT_S), f"{viewers} still sees {document} once revoked"

    # A right on the whole system covers every ticket, in every queue.
    rt.set_right(auditors, "ShowTicket")
    try:
        assert wait_until(lambda: seen_by(auditors), timeout=WAIT_S), (
            f"{auditors} granted ShowTicket globally does not see"
        )
        assert not seen_by(viewers)
    finally:
        rt.set_right(auditors, "ShowTicket", granted=False)  # every ticket is re-read: leave no global right behind
    assert wait_until(lambda: not seen_by(auditors), timeout=WAIT_S), f"{auditors} still sees {document} once revoked"
