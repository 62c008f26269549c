"""MediaWiki and Request Tracker in the local stack, installed from Debian and set up by their own tools,
written through their own APIs, and read back from their databases the way a mapping will read them:
MediaWiki's page -> revision -> slots -> content -> text, RT's tickets -> transactions -> attachments and
the ticket's role groups.

Only the databases and the named applications are started (not Kafka, Connect or Elasticsearch), in
whatever stack STREAMS_STACK_HOME and the DSN settings point at, and only what this module started is
stopped at the end. Each test is skipped unless STREAMS_STACK_APPS names its application.
"""

from __future__ import annotations

import base64
import quopri
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest

from streams.settings import Settings, get_settings
from streams.sources.write_applications import Attachment, RtApi, WikiApi
from streams.stack import stack
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import QUEUE, RequestTracker
from streams.stack.runner import Printer

pytestmark = pytest.mark.integration


def _named(application: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        application not in get_settings().stack_apps,
        reason=f"STREAMS_STACK_APPS does not name {application!r} (e.g. STREAMS_STACK_APPS=mediawiki,request-tracker)",
    )


@pytest.fixture(scope="module")
def applications() -> Iterator[Settings]:
    settings = get_settings()
    progress = Printer(lambda line: print(f"[applications] {line}", flush=True))
    running = {name for name, server in stack.servers(settings).items() if server.running()}
    try:
        started = stack.up(settings, progress, only=settings.stack_apps)
    except BaseException:
        # A failed `up` says nothing of what it started: stop every server that was not running before.
        stack.down(settings, progress, only=[name for name in stack.servers(settings) if name not in running])
        raise
    progress(f"up (started: {', '.join(started) or 'nothing'})")
    try:
        yield settings
    finally:
        stack.down(settings, progress, only=started)


def _mysql(url: str) -> Any:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        autocommit=True,
    )


WIKI_CHAIN = """
SELECT p.page_id, p.page_latest, r.rev_id, r.rev_parent_id, a.actor_name, sr.role_name,
       c.content_address, c.content_model, t.old_id, t.old_flags, t.old_text
FROM page p
JOIN revision r ON r.rev_id = p.page_latest
JOIN actor a ON a.actor_id = r.rev_actor
JOIN slots s ON s.slot_revision_id = r.rev_id
JOIN slot_roles sr ON sr.role_id = s.slot_role_id AND sr.role_name = 'main'
JOIN content c ON c.content_id = s.slot_content_id
JOIN text t ON CONCAT('tt:', t.old_id) = c.content_address
WHERE p.page_namespace = 0 AND p.page_title = %s
"""


@_named("mediawiki")
def test_a_wiki_edit_by_several_users_reaches_page_revision_slots_content_text(applications: Settings) -> None:
    wiki = MediaWiki(applications)
    suffix = uuid.uuid4().hex[:8]
    authors = {f"Alice{suffix}": uuid.uuid4().hex, f"Bob{suffix}": uuid.uuid4().hex}
    for name, password in authors.items():
        wiki.create_user(name, password)
    title = f"Streams replication {suffix}"
    first = f"== Replication ==\nA '''standby''' replays WAL ({suffix}).\n"
    second = first + "\n== Lag ==\nWatch <code>pg_stat_replication</code>. Grüße.\n"
    revisions = []
    for (name, password), text in zip(authors.items(), (first, second), strict=True):
        with WikiApi(wiki.api_url) as api:
            api.login(name, password)
            revisions.append(api.edit(title, text, summary=f"edit by {name}"))
    alice, bob = authors
    # A third author through maintenance/edit.php, on another page, with an e-mail address.
    carol, carol_page = f"Carol{suffix}", f"Streams standby {suffix}"
    wiki.create_user(carol, uuid.uuid4().hex, email=f"carol{suffix}@example.com")
    wiki.edit_page(carol_page, f"Promote the standby ({suffix}).", user=carol, summary="by edit.php")

    with _mysql(wiki.database_url()) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(WIKI_CHAIN, (title.replace(" ", "_"),))
        rows = cur.fetchall()
        cur.execute(
            "SELECT r.rev_id, r.rev_parent_id, a.actor_name FROM revision r JOIN actor a ON a.actor_id = r.rev_actor"
            " JOIN page p ON p.page_id = r.rev_page WHERE p.page_title = %s ORDER BY r.rev_id",
            (title.replace(" ", "_"),),
        )
        history = cur.fetchall()
        cur.execute(WIKI_CHAIN, (carol_page.replace(" ", "_"),))
        carols = cur.fetchall()
        cur.execute("SELECT user_email FROM user WHERE user_name = %s", (carol,))
        carol_email = cur.fetchone()
    print(rows, history)
    assert len(rows) == 1
    # MediaWiki's columns are binary (DEFAULT CHARSET=binary): names and text arrive as bytes.
    row = {name: value.decode("utf-8") if isinstance(value, bytes) else value for name, value in rows[0].items()}
    assert row["rev_id"] == revisions[1] and row["rev_parent_id"] == revisions[0]
    assert row["actor_name"] == bob
    assert row["role_name"] == "main" and row["content_address"] == f"tt:{row['old_id']}"
    assert row["old_flags"] == "utf-8"
    assert row["old_text"] == second.rstrip()  # MediaWiki trims trailing whitespace when it saves
    assert [(h["rev_id"], h["actor_name"].decode()) for h in history] == [(revisions[0], alice), (revisions[1], bob)]
    assert [(c["actor_name"].decode(), c["old_text"].decode()) for c in carols] == [
        (carol, f"Promote the standby ({suffix}).")
    ]
    assert carol_email == {"user_email": f"carol{suffix}@example.com".encode()}


def _decoded(content: str | None, encoding: str | None) -> bytes:
    raw = (content or "").encode("utf-8")
    if encoding == "base64":
        return base64.b64decode(raw)
    if encoding == "quoted-printable":
        return quopri.decodestring(raw)
    return raw


@_named("request-tracker")
def test_a_ticket_reply_reaches_tickets_transactions_attachments_and_role_groups(applications: Settings) -> None:
    rt = RequestTracker(applications)
    credentials = rt.credentials()
    suffix = uuid.uuid4().hex[:8]
    agent, agent_password = f"agent{suffix}", uuid.uuid4().hex
    with RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]) as admin:
        admin.create_user(agent, f"{agent}@streams.local", f"Agent {suffix}", agent_password)
    requestors = [f"Ann Example <ann{suffix}@example.com>", f"bob{suffix}@example.com"]
    cc = f"carol{suffix}@example.com"
    reply = f"Grüße: the standby caught up ({suffix}).\n\n> Is it still behind?\n"
    binary = b"\x00\x01\xff pg_waldump output"
    with RtApi(rt.rest2_url, agent, agent_password) as api:
        ticket = api.create_ticket(
            QUEUE, f"Replication lag {suffix}", "Is it still behind?", requestors, cc=[cc], owner=agent
        )
        api.correspond(ticket, reply, attachments=[Attachment("waldump.bin", "application/octet-stream", binary)])
        api.comment(ticket, f"<p>internal: <b>checked</b> {suffix}</p>", content_type="text/html")

    with psycopg.connect(rt.database_url(), autocommit=True) as conn:
        (effective,) = conn.execute("SELECT effectiveid FROM tickets WHERE id = %s", (ticket,)).fetchone() or (None,)
        parts = conn.execute(
            "SELECT t.id, t.type, u.name, a.id, a.parent, a.contenttype, a.contentencoding, a.filename, a.content"
            " FROM transactions t JOIN users u ON u.id = t.creator JOIN attachments a ON a.transactionid = t.id"
            " WHERE t.objecttype = 'RT::Ticket' AND t.objectid = %s AND t.type IN ('Create', 'Correspond', 'Comment')"
            " ORDER BY a.id",
            (ticket,),
        ).fetchall()
        roles = conn.execute(
            "SELECT g.name, u.name, u.emailaddress, u.realname FROM groups g"
            " JOIN groupmembers m ON m.groupid = g.id JOIN users u ON u.id = m.memberid"
            " WHERE g.domain = 'RT::Ticket-Role' AND g.instance = %s ORDER BY g.name, u.emailaddress",
            (ticket,),
        ).fetchall()
    for part in parts:
        print(part)
    print(roles)
    assert effective == ticket
    assert {part[1] for part in parts} == {"Create", "Correspond", "Comment"}
    assert all(part[2] == agent for part in parts)
    correspond = [part for part in parts if part[1] == "Correspond"]
    root = [part for part in correspond if part[4] == 0]
    assert len(root) == 1 and root[0][5] == "multipart/mixed"
    text = [part for part in correspond if part[5] == "text/plain"]
    assert len(text) == 1 and text[0][4] == root[0][3]
    assert _decoded(text[0][8], text[0][6]).decode("utf-8").strip() == reply.strip()
    attached = [part for part in correspond if part[7] == "waldump.bin"]
    assert len(attached) == 1 and attached[0][6] == "base64"
    assert _decoded(attached[0][8], attached[0][6]) == binary
    comment = [part for part in parts if part[1] == "Comment"]
    assert [(part[5], _decoded(part[8], part[6]).decode()) for part in comment] == [
        ("text/html", f"<p>internal: <b>checked</b> {suffix}</p>")
    ]
    assert {(name, email) for name, _, email, _ in roles} == {
        ("Owner", f"{agent}@streams.local"),
        ("Requestor", f"ann{suffix}@example.com"),
        ("Requestor", f"bob{suffix}@example.com"),
        ("Cc", cc),
    }
    assert ("Requestor", f"ann{suffix}@example.com", "Ann Example") in {(g, e, r) for g, _, e, r in roles}
