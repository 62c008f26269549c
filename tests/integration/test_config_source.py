"""A fourth source added by configuration alone, end to end through the real stack.

The `kb` source (tests/kb_source.py: a PostgreSQL knowledge base of articles and their comments)
exists only in this module's folder: a copy of the shipped connector definitions and mappings plus
kb's own, named by STREAMS_CONNECTORS_DIR, and kb's DSN in STREAMS_SOURCE_DSNS. For the module the
session's worker is stopped and one started with that environment, under the same worker id and
port: it joins the same consumer group, so it resumes the shipped sources where the session's worker
left them and reads kb's topics from their start. Afterwards the session's worker is started again
with the session's environment. The kb database and connector stay in the stack, as every test's
data does; the module creates them when they are missing and uses its own unique words."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from streams.agents.worker_process import worker_answers
from streams.elastic.verify_index import CATEGORIES
from streams.pipeline.document_mapping import load_mappings
from streams.settings import Settings
from streams.sources.connect import connect_postgres
from streams.stack import connectors
from streams.stack.postgres import SUPERUSER
from streams.stack.runner import wait_ended
from streams.stack.stack import servers
from streams.verify import verify_source
from tests import kb_source
from tests.integration.conftest import restarted_worker_pid_file, start_detached_worker
from tests.integration.helpers import (
    assert_worker_answers,
    es_client,
    found_documents,
    state_record,
    streams_cli,
    unique,
    wait_until,
    worker_process,
)
from tests.integration.test_faults import health, worker_pids

pytestmark = pytest.mark.integration


def _progress(line: str) -> None:
    print(f"[kb] {line}", flush=True)


def _kb_database(settings: Settings) -> str:
    """The kb database in the stack's PostgreSQL, owned by the shipped sources' user (created when
    missing, as `streams stack up` does for them), with kb's schema applied; its DSN."""
    import psycopg
    from psycopg import sql

    tickets = urlsplit(settings.dsn("tickets"))
    dsn = tickets._replace(path="/kb").geturl()
    postgres = servers(settings)["postgres"]
    with psycopg.connect(
        host=str(postgres.socket_dir),  # type: ignore[attr-defined]
        port=tickets.port or 5432,
        user=SUPERUSER,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'kb'").fetchone() is None:
            owner = sql.Identifier(tickets.username or "streams")
            conn.execute(sql.SQL("CREATE DATABASE kb OWNER {}").format(owner))
    with connect_postgres(dsn, name="kb") as conn:
        conn.execute(kb_source.SCHEMA.encode())
        conn.commit()
    return dsn


def _stop_workers() -> None:
    pids = worker_pids()
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        if not wait_ended(pid, 30):
            os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not set(worker_pids()) & set(pids), timeout=30)


@pytest.fixture(scope="module")
def kb_worker(worker: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The settings of a worker that runs the shipped sources and kb, running for the module."""
    dsn = _kb_database(worker)
    folder = kb_source.write_connectors_folder(tmp_path_factory.mktemp("kb") / "connectors", worker)
    settings = worker.model_copy(update={"connectors_dir": folder, "source_dsns": {"kb": SecretStr(dsn)}})
    assert settings.sources == ("crm", "kb", "tickets", "wiki")
    # Only kb's definition is registered here: the shipped ones are the session's, already RUNNING.
    only_kb = tmp_path_factory.mktemp("kb-connector")
    (only_kb / "kb.json").write_text((folder / "kb.json").read_text())
    connectors.register(settings, _progress, directory=only_kb)

    env = _kb_environment(settings)
    _stop_workers()
    log_path = worker.stack_home / "worker-kb.log"
    try:
        with worker_process(env, log_path) as process:

            def running_with_kb() -> bool:
                return worker_answers(settings) and "kb" in ((health(settings) or {}).get("capture_age_s") or {})

            assert_worker_answers(process, settings, log_path, timeout_s=300, ready=running_with_kb)
            yield settings
    finally:
        # The session's worker again, with the session's environment (stopped with the session).
        start_detached_worker(worker, "worker-restarted.log")
        assert restarted_worker_pid_file(worker).exists()
        assert wait_until(lambda: worker_answers(worker), timeout=300, interval=1.0), "the session's worker is back"


def _streams(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A `streams` command with the kb worker's environment, as an operator would run it."""
    return streams_cli(*args, env=_kb_environment(settings), timeout=timeout)


def _kb_environment(settings: Settings) -> dict[str, str]:
    """The environment of a process that knows kb: this one's, kb's connectors folder and DSN."""
    assert settings.connectors_dir is not None
    return {
        **os.environ,
        "STREAMS_CONNECTORS_DIR": str(settings.connectors_dir),
        "STREAMS_SOURCE_DSNS": json.dumps({"kb": settings.dsn("kb")}),
    }


def _add_article(settings: Settings, title: str, body: str, author: str) -> int:
    statement = "INSERT INTO articles (title, body, category, author_email) VALUES (%s, %s, 'howto', %s) RETURNING id"
    return int(_execute(settings, statement, (title, body, author))[0])


def _execute(settings: Settings, statement: str, params: tuple[Any, ...]) -> Any:
    """Run one statement in kb's database, committed; its first row when it returns any."""
    with connect_postgres(settings.dsn("kb"), name="kb") as conn:
        cursor = conn.execute(statement, params)
        row = cursor.fetchone() if cursor.description else None
        conn.commit()
    return row


def _kb_issues(settings: Settings, es: Any) -> dict[str, list[Any]]:
    report = verify_source(settings, es, load_mappings(settings.connectors_dir or Path()), "kb")
    return {category: issues for category, issues in report.issues.items() if issues}


def test_a_source_defined_by_configuration_is_indexed_edited_deleted_verified_and_forgotten(
    kb_worker: Settings,
) -> None:
    settings = kb_worker
    es = es_client(settings)
    old, new, comment_word, doomed = unique(), unique(), unique(), unique()
    author = f"kb.{unique('a')}@example.com"

    # Indexed: an article and a comment on it become searchable as one kb document.
    # The title stays through the edit below, so only the body carries the word the edit replaces.
    article = _add_article(settings, "Resetting a widget", f"To reset the {old} widget, hold the button.", author)
    document_id = f"kb/article/{article}"
    assert wait_until(lambda: document_id in found_documents(es, old), timeout=300), f"{document_id} never indexed"
    comment = _execute(
        settings,
        "INSERT INTO article_comments (article_id, author_email, body) VALUES (%s, %s, %s) RETURNING id",
        (article, f"reader.{unique('r')}@example.com", f"The {comment_word} trick worked for me."),
    )[0]
    assert wait_until(lambda: document_id in found_documents(es, comment_word), timeout=120), "the comment"

    def comment_part() -> bool:
        return f"article_comments/{comment}" in ((state_record(es, document_id) or {}).get("parts") or {})

    assert wait_until(comment_part, timeout=60), state_record(es, document_id)

    # Edited: the new body is found, the old one no longer.
    _execute(
        settings,
        "UPDATE articles SET body = %s, updated_at = now() WHERE id = %s",
        (f"To reset the {new} widget, unplug it.", article),
    )
    assert wait_until(lambda: document_id in found_documents(es, new), timeout=120), "the edit was not indexed"
    assert wait_until(lambda: document_id not in found_documents(es, old), timeout=60), "the old body is still found"

    # Deleted: a second article, indexed, then deleted, is gone.
    other = _add_article(settings, f"Obsolete {doomed}", f"The {doomed} procedure.", f"x.{unique('x')}@example.com")
    other_id = f"kb/article/{other}"
    assert wait_until(lambda: other_id in found_documents(es, doomed), timeout=120), f"{other_id} never indexed"
    _execute(settings, "DELETE FROM articles WHERE id = %s", (other,))
    assert wait_until(lambda: other_id not in found_documents(es, doomed), timeout=120), f"{other_id} still found"

    # Verified: kb is clean, read from its database through its mapping, by the command operators run.
    assert wait_until(lambda: not _kb_issues(settings, es), timeout=120), _kb_issues(settings, es)
    verified = _streams(settings, "verify", "--json")
    assert verified.stdout.strip(), verified.stderr
    body = json.loads(verified.stdout[verified.stdout.index("{") :])
    kb = next(s for s in body["sources"] if s["source"] == "kb")
    assert kb["ok"] and not any(kb[c] for c in CATEGORIES), kb
    assert kb["source_documents"] >= 1 and kb["indexed_documents"] >= 1

    # Forgotten: the author's article (its comment with it) is gone, and the receipt counts kb.
    forgotten = _streams(settings, "forget", author, "--wait", "--json", "--timeout", "180")
    assert forgotten.returncode == 0, forgotten.stderr
    receipt = json.loads(forgotten.stdout[forgotten.stdout.index("{") :])
    assert receipt["status"] == "unsearchable", receipt
    assert "kb" in {r["source"] for r in receipt["removed"]}, receipt["removed"]  # one count per generation
    assert sum(r["chunks"] for r in receipt["removed"] if r["source"] == "kb") > 0, receipt["removed"]
    es.indices.refresh(index=settings.index_alias)
    assert document_id not in found_documents(es, new)
    assert document_id not in found_documents(es, comment_word)
    report = verify_source(settings, es, load_mappings(settings.connectors_dir or Path()), "kb")
    assert report.ok and report.forgotten >= 1, report.to_json()
