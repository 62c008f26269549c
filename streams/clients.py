"""Every client the project opens, built from the settings object, and the one way it reads a topic.

This module sits low: it imports only the settings and the project's errors, so `elastic/`,
`agents/`, `observability/`, `bench/`, the commands and the tests can all build their clients here.

Reading a topic means one thing everywhere: assign each partition at a start offset (by default
its low watermark) and read until the high watermark each partition had when reading began.
Nothing joins a consumer group to read: offsets are assigned, never committed.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from elasticsearch import AsyncElasticsearch, Elasticsearch

from streams.errors import StreamsError
from streams.settings import Settings


class TopicReadTimeout(StreamsError):
    """A topic was not read to its end before the deadline."""

    stage = "read"


class CredentialsRefused(StreamsError):
    """A server refused the configured credentials: not an outage, nothing to retry. Messages name the
    user or the kind of credential, never the secret."""

    stage = "auth"


class KafkaAuthenticationFailed(CredentialsRefused):
    """Kafka refused the configured SASL credentials."""


class KafkaTlsFailed(CredentialsRefused):
    """The TLS handshake with Kafka failed: its certificate is not trusted (STREAMS_KAFKA_SSL_CAFILE) or
    does not name the host."""


class ElasticsearchAuthenticationFailed(CredentialsRefused):
    """Elasticsearch answered 401 to the configured user, password or API key."""


# -- Elasticsearch --------------------------------------------------------------------------------


def elasticsearch_client(settings: Settings) -> Elasticsearch:
    return Elasticsearch(**settings.elasticsearch_client_options())


def async_elasticsearch_client(settings: Settings) -> AsyncElasticsearch:
    return AsyncElasticsearch(**settings.elasticsearch_client_options())


def check_elasticsearch_login(settings: Settings) -> None:
    """Raise ElasticsearchAuthenticationFailed when Elasticsearch answers 401 to the configured credentials.

    The worker's agents would otherwise crash and restart on every batch with a bare 401. An unreachable
    server decides nothing here: the worker waits out outages as usual.
    """
    from elasticsearch import AuthenticationException
    from elasticsearch import ConnectionError as ElasticConnectionError

    try:
        # /_cluster/health, not GET /: the integ-test distribution has no rest-root module (GET / answers 405).
        elasticsearch_client(settings).options(request_timeout=10, max_retries=0).cluster.health()
    except AuthenticationException as exc:
        if settings.elasticsearch_api_key is not None:
            credential = "the API key in STREAMS_ELASTICSEARCH_API_KEY"
        elif settings.elasticsearch_username:
            credential = f"user {settings.elasticsearch_username!r} (STREAMS_ELASTICSEARCH_USERNAME/_PASSWORD)"
        else:
            credential = "no credentials (set STREAMS_ELASTICSEARCH_API_KEY or _USERNAME/_PASSWORD)"
        raise ElasticsearchAuthenticationFailed(
            f"Elasticsearch at {settings.elasticsearch_location()} refused {credential}: HTTP {exc.status_code}"
        ) from None
    except ElasticConnectionError:
        return


# -- Kafka clients --------------------------------------------------------------------------------


def unique_group(prefix: str) -> str:
    """A group id nobody else uses: for readers that assign partitions and never commit."""
    return f"{prefix}-{uuid.uuid4().hex}"


# Credentials this process has seen Kafka accept (bootstrap, protocol, mechanism, user, password digest,
# CA): a memo of the broker's answer, not a worker's state. Keyed by everything that decides the answer,
# so two workers (or tests) with other settings in one process never take each other's.
_accepted_logins: set[tuple[str, ...]] = set()
_login_lock = threading.Lock()


def _login_key(settings: Settings) -> tuple[str, ...]:
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return (
        settings.kafka_bootstrap,
        settings.kafka_security_protocol,
        settings.kafka_sasl_mechanism,
        settings.kafka_sasl_username or "",
        hashlib.sha256(password.encode()).hexdigest(),
        str(settings.kafka_ssl_cafile or ""),
    )


def check_kafka_login(settings: Settings, timeout_s: float = 15.0) -> None:
    """Raise KafkaAuthenticationFailed when Kafka refuses the configured SASL credentials, KafkaTlsFailed
    when the TLS handshake fails (a certificate the configured CA does not vouch for).

    librdkafka treats a refused login as a transient connection error: it reconnects forever, and a
    metadata request or a poll just times out ("Broker transport failure"), which reads like a broker
    that is down. The refusal itself only reaches the error callback. So, once per process and
    credentials, a small admin client asks for metadata and watches that callback: refused, accepted,
    or no answer (the broker is down: nothing is decided here, the caller's own calls report that).
    PLAINTEXT has no login or handshake to check.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    key = _login_key(settings)
    with _login_lock:
        if key in _accepted_logins:
            return
        refusals: list[str] = []
        tls_failures: list[str] = []
        brokers_down = threading.Event()

        def on_error(error: KafkaError) -> None:
            if error.code() == KafkaError._AUTHENTICATION:
                refusals.append(error.str())
            elif error.code() == KafkaError._SSL:
                tls_failures.append(error.str())
            elif error.code() == KafkaError._ALL_BROKERS_DOWN:
                brokers_down.set()

        # log_level 0: librdkafka would also print every refused attempt to stderr; the error says it once.
        admin = AdminClient(settings.kafka_config(error_cb=on_error, log_level=0))  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                admin.list_topics(timeout=0.5)
            except KafkaException:
                admin.poll(0)  # serves the error callback
                if refusals:
                    raise KafkaAuthenticationFailed(
                        f"Kafka at {settings.kafka_bootstrap} refused SASL user {settings.kafka_sasl_username!r}"
                        f" ({settings.kafka_sasl_mechanism}): {refusals[0].split(': ', 1)[-1]}. Check"
                        " STREAMS_KAFKA_SASL_USERNAME, STREAMS_KAFKA_SASL_PASSWORD and STREAMS_KAFKA_SASL_MECHANISM."
                    ) from None
                if tls_failures:
                    trusted = settings.kafka_ssl_cafile or "the system's trust store"
                    raise KafkaTlsFailed(
                        f"TLS with Kafka at {settings.kafka_bootstrap} failed: {tls_failures[0].split(': ', 1)[-1]}."
                        f" Check STREAMS_KAFKA_SSL_CAFILE (the CA trusted now: {trusted})."
                    ) from None
                if brokers_down.is_set():
                    return
                continue
            _accepted_logins.add(key)
            return


def kafka_consumer(settings: Settings, group_id: str, **extra: object) -> Consumer:
    """A consumer that never commits unless asked to (`enable.auto.commit` may be overridden)."""
    check_kafka_login(settings)
    return Consumer(settings.kafka_config(**{"group.id": group_id, "enable.auto.commit": False, **extra}))


def kafka_producer(settings: Settings, **extra: object) -> Producer:
    """A producer that puts a key in the partition the Java clients and faust/aiokafka put it in
    (murmur2; librdkafka's own default, CRC32, picks another): a tombstone must land beside the record
    it deletes, or compaction never removes that record."""
    check_kafka_login(settings)
    return Producer(settings.kafka_config(**{"partitioner": "murmur2_random", **extra}))


def kafka_admin(settings: Settings, **extra: object) -> AdminClient:
    check_kafka_login(settings)
    config = cast(dict[str, str | int | float | bool], settings.kafka_config(**extra))
    return AdminClient(config)


# -- reading a topic ------------------------------------------------------------------------------


def partitions(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The topic's partitions, or [] when it does not exist (yet)."""
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


def watermarks(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """(low, high) watermark per partition; {} when the topic does not exist."""
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        for p in partitions(consumer, topic, timeout_s)
    }


def read_to_end(
    consumer: Consumer,
    topic: str,
    start: Mapping[int, int] | None = None,
    *,
    timeout_s: float = 30.0,
    deadline_s: float | None = None,
) -> Iterator[Message]:
    """Messages from `start` (per partition; default: the low watermark) up to the end the topic has now.

    Without `deadline_s` it reads until every partition reached its end (a reader that must see the
    whole topic, such as the ledger loader, would rather wait than load half of it); with one, it
    raises TopicReadTimeout when the deadline passes first. Errors on the topic raise KafkaException.
    """
    ends: dict[int, int] = {}
    assignment: list[TopicPartition] = []
    for partition, (low, high) in watermarks(consumer, topic, timeout_s).items():
        first = max(low, start.get(partition, low)) if start is not None else low
        if high > first:
            ends[partition] = high
            assignment.append(TopicPartition(topic, partition, first))
    if not assignment:
        return
    consumer.assign(assignment)
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    while ends:
        if deadline is not None and time.monotonic() > deadline:
            raise TopicReadTimeout(f"{topic}: partitions {sorted(ends)} not read to their end within {deadline_s:g} s")
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        at, offset = message.partition(), message.offset()
        if at is None or offset is None or offset >= ends.get(at, 0):
            continue  # written after reading began, to a partition already read to its end
        yield message
        if offset + 1 >= ends[at]:
            del ends[at]


def read_whole_topic(
    settings: Settings, topic: str, group_id: str, timeout_s: float = 30.0, deadline_s: float | None = None
) -> Iterator[Message]:
    """Every message of `topic` from its beginning to the end it had when reading started."""
    consumer = kafka_consumer(settings, group_id)
    try:
        yield from read_to_end(consumer, topic, timeout_s=timeout_s, deadline_s=deadline_s)
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The high watermark of each partition of `topic` ({} when it does not exist)."""
    consumer = kafka_consumer(settings, unique_group("streams-ends"))
    try:
        return {p: high for p, (_, high) in watermarks(consumer, topic, timeout_s).items()}
    finally:
        consumer.close()


def consumer_at_end(settings: Settings, topics: Iterable[str], group_prefix: str, timeout_s: float = 10.0) -> Consumer:
    """A consumer assigned at the current end of every partition of `topics`, so that it sees only what is
    published after this call returns (a missing topic is watched on partition 0, where Kafka creates it)."""
    consumer = kafka_consumer(settings, unique_group(group_prefix))
    assignment: list[TopicPartition] = []
    for topic in topics:
        for partition in partitions(consumer, topic, timeout_s) or [0]:
            # The offset is resolved now, not left as OFFSET_END: that would be resolved at the first
            # poll, and a record published in between would be skipped.
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            assignment.append(TopicPartition(topic, partition, max(high, 0)))
    consumer.assign(assignment)
    return consumer
