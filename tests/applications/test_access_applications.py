"""Who may see follows the applications: a ticket is in its RT queue's group (`queue:<name>`) and a wiki
page in its namespace's (`namespace:<n>`), so through the worker's /search a caller holding another
queue's or namespace's group does not see it, and a caller holding its group does. Content written
through RT's REST 2 API and MediaWiki's action API; callers are HS256 JWTs carrying their groups. On the
whole local stack; skipped unless STREAMS_STACK_APPS names both applications."""

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
