"""The pipeline with Kafka SASL/SCRAM on: a change in a source reaches the index through Debezium (Kafka
Connect, whose worker, clients and MariaDB schema history all log in) and the faust worker, and a client
with a wrong password is refused with a clear error instead of timing out.

The other integration tests run against the session's plaintext stack, so this module starts a stack of
its own: SASL_PLAINTEXT with SCRAM-SHA-512, its own stack home (`<stack_home>-sasl`) and every port 1000
above the session's (the default stack's 19092 becomes 20092), and stops what it started at the end.
It costs one more stack start (about two minutes here; the data stays for the next run) and runs
alongside the session's stack, which it never touches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.agents.worker_process import worker_answers
from streams.auth import local_key
from streams.clients import KafkaAuthenticationFailed, check_kafka_login, kafka_admin
from streams.polling import poll
from streams.settings import PROJECT_ROOT, Settings, get_settings
from streams.sources import edits
from streams.stack import connectors, stack
from tests.integration.helpers import unique, wait_until

pytestmark = pytest.mark.integration

PORT_OFFSET = 1000
USER = "streams-sasl-test"
# A password with the characters that need escaping in a JAAS line and a .properties file.
PASSWORD = 'scram "test" \\ password'
WRONG_PASSWORD = "not-the-password"


def _progress(line: str) -> None:
    print(f"[sasl stack] {line}", flush=True)


def _shift_url(url: str) -> str:
    parts = urlsplit(url)
    assert parts.port is not None, url
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{parts.port + PORT_OFFSET}"
    return urlunsplit(parts._replace(netloc=netloc))


def sasl_environment(base: Settings) -> dict[str, str]:
    """STREAMS_* variables for a SASL stack beside `base`'s: other ports, other stack home, SCRAM on."""
    host, port = base.kafka_bootstrap.rsplit(":", 1)
    return {
        "STREAMS_STACK_HOME": str(base.stack_home.with_name(base.stack_home.name + "-sasl")),
        "STREAMS_KAFKA_BOOTSTRAP": f"{host}:{int(port) + PORT_OFFSET}",
        "STREAMS_KAFKA_CONTROLLER_PORT": str(base.kafka_controller_port + PORT_OFFSET),
        "STREAMS_CONNECT_URL": _shift_url(base.connect_url),
        "STREAMS_ELASTICSEARCH_URL": _shift_url(base.elasticsearch_url),
        "STREAMS_ELASTICSEARCH_TRANSPORT_PORT": str(base.elasticsearch_transport_port + PORT_OFFSET),
        **{f"STREAMS_{source.upper()}_DSN": _shift_url(base.dsn(source)) for source in ("tickets", "crm", "wiki")},
        "STREAMS_WORKER_WEB_PORT": str(base.worker_web_port + PORT_OFFSET),
        "STREAMS_WORKER_ID": "streams-worker-sasl",
        "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAMS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMS_KAFKA_SASL_USERNAME": USER,
        "STREAMS_KAFKA_SASL_PASSWORD": PASSWORD,
    }


def settings_from(environment: dict[str, str]) -> Settings:
    return Settings(**{name.removeprefix("STREAMS_").lower(): value for name, value in environment.items()})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def connectors_watch() -> Iterator[None]:
    """Overrides the session's autouse supervisor: this module needs its own stack, not the session's."""
    yield


@pytest.fixture(scope="module")
def sasl_stack() -> Iterator[tuple[Settings, dict[str, str]]]:
    environment = sasl_environment(get_settings())
    settings = settings_from(environment)
    started = stack.up(settings, _progress)
    try:
        connectors.register(settings, _progress)
        yield settings, environment
    finally:
        if started:
            stack.down(settings, _progress, only=started)


@pytest.fixture(scope="module")
def sasl_worker(sasl_stack: tuple[Settings, dict[str, str]]) -> Iterator[Settings]:
    """`streams worker` for the SASL stack (faust/aiokafka with SCRAM), stopped after the module."""
    settings, environment = sasl_stack
    if worker_answers(settings):
        yield settings
        return
    log_path = settings.stack_home / "worker-sasl-test.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env={**os.environ, **environment},
        )
    try:

        def answers() -> bool:
            assert process.poll() is None, f"the SASL worker exited with {process.returncode}; see {log_path}"
            return worker_answers(settings)

        assert poll(answers, 240, 1.0), f"the SASL worker did not answer within 240 s; see {log_path}"
        yield settings
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _search(settings: Settings, word: str) -> set[str]:
    """Document ids the worker's /search returns for `word`, as the local operator."""
    key = local_key(settings, "local-operator")
    query = urllib.parse.urlencode({"q": word, "k": "20"})
    request = urllib.request.Request(
        f"{settings.worker_url()}/search?{query}", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body: dict[str, Any] = json.load(response)
    return {hit["document_id"] for hit in body["hits"]}


def test_changes_reach_the_index_through_sasl_kafka(sasl_worker: Settings) -> None:
    settings = sasl_worker
    word = unique("sasl")
    ticket_id = edits.add_ticket(
        f"Badge reader {word}",
        f"The badge reader at the door shows {word}.",
        f"{unique('req')}@example.com",
        ["support"],
        dsn=settings.dsn("tickets"),
    )
    # The wiki goes through MariaDB's connector, whose schema history has Kafka clients of its own.
    page_id = edits.new_wiki_page(
        f"Runbook {unique('t')}",
        f"== Badge readers ==\n\nWhen a reader shows {word}, reseat it.",
        ["support"],
        f"{unique('author')}@example.com",
        dsn=settings.dsn("wiki"),
    )
    wanted = {f"tickets/ticket/{ticket_id}", f"wiki/page/{page_id}"}

    def indexed() -> set[str] | None:
        found = _search(settings, word)
        return found if wanted <= found else None

    assert wait_until(indexed, timeout=120), f"{wanted} not searchable through the SASL stack within 120 s"


def test_a_wrong_password_is_refused_with_a_clear_error(sasl_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, environment = sasl_stack
    check_kafka_login(settings)  # the right password passes

    wrong = settings_from({**environment, "STREAMS_KAFKA_SASL_PASSWORD": WRONG_PASSWORD})
    with pytest.raises(KafkaAuthenticationFailed) as refused:
        kafka_admin(wrong)
    message = str(refused.value)
    assert f"refused SASL user '{USER}'" in message and "SCRAM-SHA-512" in message, message
    assert "STREAMS_KAFKA_SASL_PASSWORD" in message and WRONG_PASSWORD not in message, message

    # The worker refuses to start, saying why, within seconds (not after a metadata timeout loop).
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, **environment, "STREAMS_KAFKA_SASL_PASSWORD": WRONG_PASSWORD},
        timeout=120,
    )
    assert done.returncode != 0
    assert f"refused SASL user '{USER}'" in done.stderr, done.stderr[-2000:]
    assert WRONG_PASSWORD not in done.stdout + done.stderr

    # No unauthenticated way in: a PLAINTEXT client gets no metadata from the SASL listener.
    plaintext = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        plaintext.list_topics(timeout=5)
