"""Faults on the real applications: while pages are edited through MediaWiki's API, replies posted
through RT's REST 2 API and a note rewritten through Tryton's JSON-RPC (the applications benchmark's
writers), kill -9 the worker, then Kafka Connect, then the broker, then Elasticsearch (kept down a
while): the fault suite's four faults. Afterwards, with no manual step, each document shows
its newest text (a Tryton note's older words are gone), and `streams verify` finds no new drift.
On the whole local stack; skipped unless STREAMS_STACK_APPS names an application."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from streams.bench.applications import WRITERS, Writer
from streams.settings import Settings, get_settings
from tests.applications.helpers import document_texts
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import es_client, found_documents, wait_until
from tests.integration.test_faults import _issues, _leave_the_stack_as_found, _verify, server_kill, worker_kill

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not set(get_settings().stack_apps) & set(WRITERS),
        reason="STREAMS_STACK_APPS names no application",
    ),
]
EDITS_PER_APP = 40
INTERVAL_S = 0.5
ES_DOWN_S = 15.0  # Elasticsearch kept down while the applications go on being edited
WAIT_S = 240.0


class Stream(threading.Thread):
    """Edits one application's document again and again; remembers every word it wrote."""

    def __init__(self, writer: Writer) -> None:
        super().__init__(name=f"edits-{writer.source}", daemon=True)
        self.writer, self.words, self.errors = writer, [], []  # type: ignore[var-annotated]

    def run(self) -> None:
        for _ in range(EDITS_PER_APP):
            word = f"zqfault{uuid.uuid4().hex[:12]}"
            try:
                self.writer.edit(word)
                self.words.append(word)
            except Exception as exc:  # the application refused: counted, the stream goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(INTERVAL_S)


@pytest.mark.timeout(1200)
def test_the_applications_documents_end_in_their_newest_state_after_every_fault(
    worker: Settings,  # noqa: F811
) -> None:
    apps = [app for app in worker.stack_apps if app in WRITERS]
    token = uuid.uuid4().hex[:10]
    writers = [WRITERS[app](worker, token) for app in apps]
    es = es_client()
    for writer in writers:
        assert wait_until(lambda w=writer: bool(document_texts(w.document_id)), timeout=WAIT_S), writer.document_id
    before = _verify()
    streams = [Stream(writer) for writer in writers]
    try:
        for stream in streams:
            stream.start()
        faults = [
            worker_kill(worker),
            server_kill(worker, "connect"),
            server_kill(worker, "kafka"),
            server_kill(worker, "elasticsearch", ES_DOWN_S),
        ]
        for number, fault in enumerate(faults, start=1):  # each after its share of every stream's edits
            share = number * EDITS_PER_APP // (len(faults) + 1)
            assert wait_until(lambda n=share: min(len(s.words) for s in streams) >= n, timeout=300)
            fault()
        for stream in streams:
            stream.join(timeout=300)
        for stream in streams:
            assert not stream.errors, (stream.writer.source, stream.errors[:3])
            newest, document_id = stream.words[-1], stream.writer.document_id
            assert wait_until(lambda d=document_id, w=newest: d in found_documents(es, w), timeout=WAIT_S), (
                f"{document_id}: its newest edit never became searchable"
            )
            texts = document_texts(document_id)
            if stream.writer.source == "tryton":  # one note rewritten: only its newest text is held
                assert not [w for w in stream.words[:-1] if w in texts], document_id
            else:  # every edit added text: all of it is held
                assert all(w in texts for w in stream.words), document_id
        after = _verify()
    finally:
        for writer in writers:
            writer.close()
        _leave_the_stack_as_found(worker)
    new_issues = sorted(_issues(after) - _issues(before))
    assert not new_issues, f"streams verify found drift after the faults: {new_issues[:20]}"
