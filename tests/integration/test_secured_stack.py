"""The pipeline on a secured stack: Kafka with SASL/SCRAM-SHA-512 over TLS (SASL_SSL) and Elasticsearch
with security and TLS.

A change in a source reaches the index through Debezium (Kafka Connect, whose worker, clients and MariaDB
schema history all log in) and the faust worker, which talks to Kafka with SCRAM and to Elasticsearch over
https with an API key. A wrong Kafka password, a Kafka client that does not trust the stack's CA and a
wrong API key are refused with clear errors, not hangs.

The other integration tests run against the session's plaintext stack, so this module starts a stack of
its own: its own stack home (`<stack_home>-sasl`) and every port 1000 above the session's (the default
stack's 19092 becomes 20092), and stops what it started at the end. It costs one more stack start (about
two minutes here; the data stays for the next run) and runs beside the session's stack, never touching it.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from elastic_transport import ConnectionError as ElasticConnectionError
from elasticsearch import AuthenticationException

from streams.agents.worker_process import worker_answers
from streams.auth import local_key
from streams.clients import (
    KafkaAuthenticationFailed,
    KafkaTlsFailed,
    check_elasticsearch_login,
    check_kafka_login,
    elasticsearch_client,
    kafka_admin,
)
from streams.settings import Settings, get_settings
from streams.sources import edits
from streams.stack import connectors, stack
from streams.stack.elasticsearch_security import create_api_key
from tests.integration.helpers import (
    assert_worker_answers,
    settings_from,
    shifted_url,
    streams_cli,
    unique,
    wait_until,
    worker_process,
)

pytestmark = pytest.mark.integration

PORT_OFFSET = 1000
USER = "streams-sasl-test"
ES_USER = "streams-es-test"
ES_PASSWORD = "es test password"
# A password with the characters that need escaping in a JAAS line and a .properties file.
PASSWORD = 'scram "test" \\ password'
WRONG_PASSWORD = "not-the-password"


def _progress(line: str) -> None:
    print(f"[sasl stack] {line}", flush=True)


def sasl_environment(base: Settings) -> dict[str, str]:
    """STREAMS_* variables for a SASL stack beside `base`'s: other ports, other stack home, SCRAM on."""
    host, port = base.kafka_bootstrap.rsplit(":", 1)
    home = base.stack_home.with_name(base.stack_home.name + "-sasl")
    return {
        "STREAMS_STACK_HOME": str(home),
        "STREAMS_KAFKA_BOOTSTRAP": f"{host}:{int(port) + PORT_OFFSET}",
        "STREAMS_KAFKA_CONTROLLER_PORT": str(base.kafka_controller_port + PORT_OFFSET),
        "STREAMS_CONNECT_URL": shifted_url(base.connect_url, PORT_OFFSET),
        # https and a user: the stack turns security and TLS on, creates the user and a CA for clients to trust.
        "STREAMS_ELASTICSEARCH_URL": shifted_url(base.elasticsearch_url, PORT_OFFSET, "https"),
        "STREAMS_ELASTICSEARCH_USERNAME": ES_USER,
        "STREAMS_ELASTICSEARCH_PASSWORD": ES_PASSWORD,
        "STREAMS_ELASTICSEARCH_CA_CERTS": str(home / "elasticsearch" / "config" / "certs" / "ca.crt"),
        "STREAMS_ELASTICSEARCH_TRANSPORT_PORT": str(base.elasticsearch_transport_port + PORT_OFFSET),
        **{
            f"STREAMS_{source.upper()}_DSN": shifted_url(base.dsn(source), PORT_OFFSET)
            for source in ("tickets", "crm", "wiki")
        },
        "STREAMS_WORKER_WEB_PORT": str(base.worker_web_port + PORT_OFFSET),
        "STREAMS_WORKER_ID": "streams-worker-sasl",
        "STREAMS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMS_KAFKA_SSL_CAFILE": str(home / "kafka" / "certs" / "ca.crt"),
        "STREAMS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMS_KAFKA_SASL_USERNAME": USER,
        "STREAMS_KAFKA_SASL_PASSWORD": PASSWORD,
        # The applications would take the session stack's ports; this stack is about Kafka and Elasticsearch.
        "STREAMS_STACK_APPS": "",
    }


ES_CREDENTIALS = ("STREAMS_ELASTICSEARCH_USERNAME", "STREAMS_ELASTICSEARCH_PASSWORD", "STREAMS_ELASTICSEARCH_API_KEY")


def with_api_key(environment: dict[str, str], key: str) -> dict[str, str]:
    """The same settings with an API key instead of the user."""
    return {
        **{name: value for name, value in environment.items() if name not in ES_CREDENTIALS},
        "STREAMS_ELASTICSEARCH_API_KEY": key,
    }


def process_environment(environment: dict[str, str]) -> dict[str, str]:
    """A subprocess's environment: this one without the session's Elasticsearch credentials, plus `environment`."""
    return {**{k: v for k, v in os.environ.items() if k not in ES_CREDENTIALS}, **environment}


@pytest.fixture(scope="module")
def connectors_watch() -> Iterator[None]:
    """Overrides the session's autouse supervisor: this module needs its own stack, not the session's."""
    yield


@pytest.fixture(scope="module")
def sasl_stack() -> Iterator[tuple[Settings, dict[str, str]]]:
    environment = sasl_environment(get_settings())
    settings = settings_from(environment)
    running_before = {name for name, server in stack.servers(settings).items() if server.running()}
    try:
        started = stack.up(settings, _progress)
    except BaseException:
        # A server that failed to start must not leave the others of this stack running after the module.
        stack.down(settings, _progress, only=[n for n in stack.servers(settings) if n not in running_before])
        raise
    try:
        connectors.register(settings, _progress)
        yield settings, environment
    finally:
        if started:
            stack.down(settings, _progress, only=started)


@pytest.fixture(scope="module")
def sasl_worker(sasl_stack: tuple[Settings, dict[str, str]]) -> Iterator[Settings]:
    """`streams worker` for the secured stack (faust/aiokafka with SCRAM, Elasticsearch with an API key over
    https), stopped after the module."""
    settings, environment = sasl_stack
    environment = with_api_key(environment, create_api_key(settings, "streams-worker-sasl-test"))
    settings = settings_from(environment)
    if worker_answers(settings):
        yield settings
        return
    log_path = settings.stack_home / "worker-sasl-test.log"
    with worker_process(process_environment(environment), log_path) as process:
        assert_worker_answers(process, settings, log_path)
        yield settings


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


def test_changes_reach_the_index_on_the_secured_stack(sasl_worker: Settings) -> None:
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

    assert wait_until(indexed, timeout=120), f"{wanted} not searchable through the secured stack within 120 s"


def test_a_wrong_kafka_password_is_refused_with_a_clear_error(sasl_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, environment = sasl_stack
    check_kafka_login(settings)  # the right password passes

    wrong = settings_from({**environment, "STREAMS_KAFKA_SASL_PASSWORD": WRONG_PASSWORD})
    with pytest.raises(KafkaAuthenticationFailed) as refused:
        kafka_admin(wrong)
    message = str(refused.value)
    assert f"refused SASL user '{USER}'" in message and "SCRAM-SHA-512" in message, message
    assert "STREAMS_KAFKA_SASL_PASSWORD" in message and WRONG_PASSWORD not in message, message

    # The worker refuses to start, saying why, within seconds (not after a metadata timeout loop).
    done = streams_cli(
        "worker", env=process_environment({**environment, "STREAMS_KAFKA_SASL_PASSWORD": WRONG_PASSWORD}), timeout=120
    )
    assert done.returncode != 0
    assert f"refused SASL user '{USER}'" in done.stderr, done.stderr[-2000:]
    assert WRONG_PASSWORD not in done.stdout + done.stderr

    # No unauthenticated way in: a PLAINTEXT client gets no metadata from the SASL listener.
    plaintext = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})
    with pytest.raises(KafkaException):
        plaintext.list_topics(timeout=5)

    # Nor without TLS: the right user and password over SASL_PLAINTEXT get no metadata from the TLS listener.
    no_tls = AdminClient({**settings.kafka_config(), "security.protocol": "SASL_PLAINTEXT", "log_level": 0})
    with pytest.raises(KafkaException):
        no_tls.list_topics(timeout=5)


def test_kafka_speaks_tls_and_a_client_that_does_not_trust_its_ca_is_refused(
    sasl_stack: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    """A check that can fail: the same user and password with another CA (a stranger's, made here) end in
    a TLS error that names the setting, and the worker refuses to start the same way."""
    from streams.stack import certificates

    settings, environment = sasl_stack
    check_kafka_login(settings)  # the stack's CA: the handshake and the login pass
    stranger = certificates.ensure(tmp_path / "stranger", "127.0.0.1").ca
    untrusting = {**environment, "STREAMS_KAFKA_SSL_CAFILE": str(stranger)}
    with pytest.raises(KafkaTlsFailed) as refused:
        kafka_admin(settings_from(untrusting))
    message = str(refused.value)
    assert "TLS with Kafka" in message and "STREAMS_KAFKA_SSL_CAFILE" in message and str(stranger) in message, message

    done = streams_cli("worker", env=process_environment(untrusting), timeout=120)
    assert done.returncode != 0
    assert "TLS with Kafka" in done.stderr, done.stderr[-2000:]
    assert PASSWORD not in done.stdout + done.stderr


def test_elasticsearch_takes_only_valid_credentials_over_tls(sasl_stack: tuple[Settings, dict[str, str]]) -> None:
    settings, environment = sasl_stack
    user = elasticsearch_client(settings).security.authenticate()
    assert user["username"] == ES_USER
    key = settings_from(with_api_key(environment, create_api_key(settings, "streams-sasl-test-probe")))
    assert elasticsearch_client(key).security.authenticate()["authentication_type"] == "api_key"
    check_elasticsearch_login(key)  # the worker's start-up check passes a good key

    wrong_key = base64.b64encode(b"not-an-id:not-a-key").decode()
    anonymous = {name: value for name, value in environment.items() if name not in ES_CREDENTIALS}
    for refused in (settings_from(with_api_key(environment, wrong_key)), settings_from(anonymous)):
        with pytest.raises(AuthenticationException) as error:
            elasticsearch_client(refused).cluster.health()
        assert error.value.status_code == 401

    # The worker refuses to start with a wrong key, saying which credential (its agents would crash-loop on 401).
    done = streams_cli("worker", env=process_environment(with_api_key(environment, wrong_key)), timeout=120)
    assert done.returncode != 0
    assert "refused the API key in STREAMS_ELASTICSEARCH_API_KEY: HTTP 401" in done.stderr, done.stderr[-2000:]
    assert wrong_key not in done.stdout + done.stderr

    # The HTTP port speaks TLS only: a plain-http client gets no answer.
    plain_url = settings.elasticsearch_url.replace("https://", "http://")
    plain_environment = {name: value for name, value in anonymous.items() if name != "STREAMS_ELASTICSEARCH_CA_CERTS"}
    plain = settings_from({**plain_environment, "STREAMS_ELASTICSEARCH_URL": plain_url})
    with pytest.raises(ElasticConnectionError):
        elasticsearch_client(plain).options(max_retries=0, request_timeout=10).cluster.health()
