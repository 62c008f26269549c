"""Small helpers for the integration tests: waiting, running `streams` commands and workers of a stack's
own, searching the real index, scraping the worker's metrics, and reading/replaying real Debezium events
on Kafka. No mocks: everything talks to the stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka import TopicPartition
from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families

from streams.agents.worker_process import worker_answers
from streams.child_process import streams_command
from streams.clients import (
    elasticsearch_client,
    end_offsets,
    kafka_consumer,
    kafka_producer,
    read_to_end,
    read_whole_topic,
    unique_group,
)
from streams.polling import poll
from streams.settings import PROJECT_ROOT, Settings, get_settings

T = TypeVar("T")

DEADLINE_S = 120.0


def wait_until(predicate: Callable[[], T], timeout: float = DEADLINE_S, interval: float = 0.5) -> T:
    """Poll `predicate` until it returns a truthy value; return that value (or the last one at the deadline)."""
    return poll(predicate, timeout, interval)


def settings_from(environment: dict[str, str]) -> Settings:
    """The settings a process started with these STREAMS_* variables (beside this one's) would read."""
    return Settings(**{name.removeprefix("STREAMS_").lower(): value for name, value in environment.items()})  # type: ignore[arg-type]


def shifted_url(url: str, offset: int, scheme: str | None = None) -> str:
    """The same URL with its port `offset` above (and another scheme): a stack of a test's own beside the
    session's."""
    parts = urlsplit(url)
    assert parts.port is not None, url
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{parts.port + offset}"
    return urlunsplit(parts._replace(netloc=netloc, scheme=scheme or parts.scheme))


def streams_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`streams ARGS` run as an operator runs it, from the project's root, its output captured; `env` is
    its whole environment (None: this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=None if env is None else dict(env),
        timeout=timeout,
    )


@contextmanager
def worker_process(env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`streams worker` with the whole environment `env`, from the project's root, its output in
    `log_path`, for as long as the block lasts (then SIGTERM, and SIGKILL after 30 s)."""
    with streams_command(["worker"], log_path, stop_timeout_s=30, env=env, cwd=PROJECT_ROOT) as process:
        yield process


def assert_worker_answers(
    process: subprocess.Popen[bytes],
    settings: Settings,
    log_path: Path,
    timeout_s: float = 240.0,
    ready: Callable[[], bool] | None = None,
) -> None:
    """Wait until the worker `process` answers at `settings`' port (or `ready()` holds), failing the test
    at once when it exits and when `timeout_s` passes first."""

    def answers() -> bool:
        assert process.poll() is None, f"the worker exited with {process.returncode}; see {log_path}"
        return ready() if ready is not None else worker_answers(settings)

    assert wait_until(answers, timeout=timeout_s, interval=1.0), (
        f"the worker did not answer within {timeout_s:.0f} s; see {log_path}"
    )


def unique(prefix: str = "zq") -> str:
    """A word no other data contains (letters only, so BM25's standard analyzer keeps it as one token)."""
    return prefix + re.sub(r"[^a-z]", "", uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop")))


def es_client(settings: Settings | None = None) -> Elasticsearch:
    return elasticsearch_client(settings or get_settings())


def refresh(es: Elasticsearch, settings: Settings | None = None) -> None:
    es.indices.refresh(index=(settings or get_settings()).index_alias)


def search_chunks(
    es: Elasticsearch, query: str, *, groups: Sequence[str] | None = None, size: int = 100, visible_only: bool = True
) -> list[dict[str, Any]]:
    """BM25 hits (chunk sources with `_id`) for `query`, through the same filter the product uses."""
    from streams.elastic.hybrid_index import bm25_query, chunk_filter

    settings = get_settings()
    filters = chunk_filter(None, groups) if visible_only else [{"term": {"kind": "chunk"}}]
    response = es.search(index=settings.index_alias, **bm25_query(query, filters, size))
    return [{"_id": hit["_id"], **hit["_source"]} for hit in response["hits"]["hits"]]


def found_documents(es: Elasticsearch, query: str, **kwargs: Any) -> set[str]:
    return {hit["document_id"] for hit in search_chunks(es, query, **kwargs)}


def document_chunks(es: Elasticsearch, document_id: str, *, with_vector: bool = False) -> list[dict[str, Any]]:
    """Every chunk record (visible or not) of one document, sorted by part and number."""
    settings = get_settings()
    es.indices.refresh(index=settings.index_alias)
    response = es.search(
        index=settings.index_alias,
        size=1000,
        query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"document_id": document_id}}]}},
        source_excludes=[] if with_vector else ["vector"],
    )
    chunks = [{"_id": hit["_id"], **hit["_source"]} for hit in response["hits"]["hits"]]
    return sorted(chunks, key=lambda c: (c["part_id"], c["chunk_number"]))


def visible_chunks(es: Elasticsearch, document_id: str) -> list[dict[str, Any]]:
    return [c for c in document_chunks(es, document_id) if c.get("visible")]


def state_record(es: Elasticsearch, document_id: str) -> dict[str, Any] | None:
    settings = get_settings()
    response = es.options(ignore_status=404).get(index=settings.index_alias, id=f"state:{document_id}")
    return response["_source"] if response.get("found") else None


def knn_documents(es: Elasticsearch, vector: Sequence[float], size: int = 50) -> list[dict[str, Any]]:
    from streams.elastic.hybrid_index import chunk_filter, knn_query

    settings = get_settings()
    response = es.search(index=settings.index_alias, **knn_query(vector, chunk_filter(None, None), size))
    return [{"_id": hit["_id"], **hit["_source"]} for hit in response["hits"]["hits"]]


OPERATOR = "local-operator"  # the local stack's key names (streams/auth.py: ensure_local_keys)
SUPPORT = "local-support"


def search_key(name: str = OPERATOR) -> str:
    """A key from the local stack's search key file (`streams stack up` generates it)."""
    from streams.auth import local_key

    return local_key(get_settings(), name)


def search_api(params: dict[str, str], authorization: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """GET /search with these parameters and Authorization header: (status, headers, JSON body), errors included."""
    request = urllib.request.Request(f"{get_settings().worker_url()}/search?{urllib.parse.urlencode(params)}")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), dict(json.load(exc))


def hybrid(
    query: str, groups: Sequence[str] | None = None, k: int = 20, sources: Sequence[str] = (), *, key: str | None = None
) -> dict[str, Any]:
    """The worker's /search endpoint (the product's hybrid search: BM25 + kNN fused with RRF), as the local
    operator unless `key` names another credential; `groups` narrows the credential's groups."""
    params: dict[str, str] = {"q": query, "k": str(k)}
    if groups is not None:
        params["groups"] = ",".join(groups)
    if sources:
        params["source"] = ",".join(sources)
    status, _, body = search_api(params, f"Bearer {key or search_key()}")
    assert status == 200, f"/search answered {status}: {body}"
    return body


def hybrid_document_ids(query: str, groups: Sequence[str] | None = None, k: int = 20) -> set[str]:
    return {hit["document_id"] for hit in hybrid(query, groups, k)["hits"]}


def matched_document_ids(query: str, k: int = 50) -> set[str]:
    """The documents /search returns because their words match the query (a chunk with a BM25 rank).
    kNN always answers with the nearest chunks, so a document that stays in the index can come back for
    any query, a forgotten name included; what it must not do is match that name."""
    hits = hybrid(query, k=k)["hits"]
    return {hit["document_id"] for hit in hits if any(chunk["bm25_rank"] is not None for chunk in hit["chunks"])}


def metrics_text() -> str:
    with urllib.request.urlopen(f"{get_settings().worker_url()}/metrics", timeout=30) as response:
        return str(response.read().decode())


def _vector_key(vector: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(x, 6) for x in vector)  # the index may round-trip a float through a double


def mark_vectors(es: Elasticsearch, document_id: str) -> set[tuple[float, ...]]:
    """Replace each chunk vector of the document, straight in the index, by its opposite: a vector the
    model never gives. The worker reuses an unchanged chunk's stored vector, so after a change a chunk
    still carrying a mark was not embedded again, and one with any other vector was. Per document, so
    nothing else the worker embeds meanwhile counts."""
    chunks = document_chunks(es, document_id, with_vector=True)
    assert chunks, f"{document_id} has no chunks to mark"
    operations: list[dict[str, Any]] = []
    marks = set()
    for chunk in chunks:
        marked = [-x for x in chunk["vector"]]
        marks.add(_vector_key(marked))
        operations += [{"update": {"_id": chunk["_id"]}}, {"doc": {"vector": marked}}]
    response = es.bulk(index=get_settings().index_alias, operations=operations, refresh=True)
    assert not response["errors"], response
    return marks


def embedded_since_marked(es: Elasticsearch, document_id: str, marks: set[tuple[float, ...]]) -> list[str]:
    """The document's visible chunks whose vector is no mark (see `mark_vectors`): embedded since."""
    return [
        chunk["_id"]
        for chunk in document_chunks(es, document_id, with_vector=True)
        if chunk.get("visible") and _vector_key(chunk["vector"]) not in marks
    ]


def metrics_value(name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of a metric's samples (those matching `labels`) from the worker's /metrics."""
    wanted = (labels or {}).items()
    return (
        sum(
            sample.value
            for family in text_string_to_metric_families(metrics_text())
            for sample in family.samples
            if sample.name == name and wanted <= sample.labels.items()
        )
        + 0.0
    )


# -- Kafka ----------------------------------------------------------------------------------------


def topic_messages(topic: str, settings: Settings | None = None, timeout_s: float = 30.0) -> list[Any]:
    """Every message now in `topic` (all partitions), from the beginning to the current end."""
    settings = settings or get_settings()
    return list(read_whole_topic(settings, topic, unique_group("tests-reader"), timeout_s, deadline_s=timeout_s * 4))


def row_events(topic: str, key: dict[str, Any]) -> list[tuple[bytes, bytes | None]]:
    """The (key, value) of every captured event for the row with primary key `key`, in log order."""
    wanted = json.dumps(key, separators=(",", ":")).encode()
    found = []
    for message in topic_messages(topic):
        raw_key = message.key()
        if raw_key is None:
            continue
        try:
            decoded = json.loads(raw_key)
        except ValueError:
            continue
        payload = decoded.get("payload", decoded) if isinstance(decoded, dict) else decoded
        if payload == key or raw_key == wanted:
            found.append((raw_key, message.value()))
    return found


def produce(
    topic: str, records: Iterable[tuple[bytes | None, bytes | None]], settings: Settings | None = None
) -> list[tuple[int, int]]:
    """Produce in order and wait for every acknowledgement; the (partition, offset) of each record.

    murmur2 is the Java client's partitioner (Debezium's): a re-produced event lands in the partition
    its row's events are in, as a real redelivery would."""
    settings = settings or get_settings()
    producer = kafka_producer(settings, **{"acks": "all", "partitioner": "murmur2_random"})
    delivered: list[tuple[int, int] | None] = []

    def report(index: int) -> Callable[[Any, Any], None]:
        def on_delivery(error: Any, message: Any) -> None:
            assert error is None, f"delivery to {topic} failed: {error}"
            delivered[index] = (message.partition(), message.offset())

        return on_delivery

    for key, value in records:
        delivered.append(None)
        producer.produce(topic, key=key, value=value, on_delivery=report(len(delivered) - 1))
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages were not delivered to {topic}"
    assert all(d is not None for d in delivered)
    return [d for d in delivered if d is not None]


def topic_end_offsets(topic: str, settings: Settings | None = None) -> dict[int, int]:
    return end_offsets(settings or get_settings(), topic)


def messages_after(topic: str, start: dict[int, int], timeout_s: float = 10.0) -> list[Any]:
    """Messages of `topic` past the given per-partition offsets, up to the end as it is now."""
    consumer = kafka_consumer(get_settings(), unique_group("tests-after"))
    try:
        return list(read_to_end(consumer, topic, start, deadline_s=timeout_s))
    finally:
        consumer.close()


def wait_processed(topic: str, delivered: Iterable[tuple[int, int]], timeout: float = DEADLINE_S) -> bool:
    """Wait until the router's consumer group has committed past every (partition, offset) of a Debezium
    topic in `delivered`, and then the worker's group past everything on the repartition topics at that
    moment.

    The router commits a Debezium record once it is forwarded (keyed by document) to a repartition
    topic; the indexing agents handle one batch at a time and commit only after the batch was written
    (or dead-lettered). So once both are committed, whatever the worker did with those records is in
    the index: the condition to wait for before asserting that nothing changed."""
    settings = get_settings()
    wanted: dict[int, int] = {}
    for partition, offset in delivered:
        wanted[partition] = max(wanted.get(partition, 0), offset + 1)
    if not wanted:
        return True
    # The groups' ids, but never subscribed: reading their committed offsets does not join them.
    router = kafka_consumer(settings, settings.router_group_id)
    consumer = kafka_consumer(settings, settings.worker_id)
    try:

        def committed(on: str, past: dict[int, int], group: Any = consumer) -> bool:
            offsets = group.committed([TopicPartition(on, p) for p in past], timeout=10)
            return all((tp.offset or -1) >= past[tp.partition] for tp in offsets)

        if not wait_until(lambda: committed(topic, wanted, router), timeout=timeout, interval=0.5):
            return False
        # Both lanes' repartition topics: the live one and the backfill one (bulk work).
        for lane_topic in (settings.routed_topic, settings.backfill_topic):
            routed = {p: end for p, end in end_offsets(settings, lane_topic).items() if end > 0}
            if routed and not wait_until(lambda t=lane_topic, r=routed: committed(t, r), timeout=timeout):
                return False
        return True
    finally:
        router.close()
        consumer.close()


def wait_for_keyed_message(topic: str, key: bytes, start: dict[int, int], timeout: float = 120.0) -> Any | None:
    """The first message with `key` in `topic` past `start`, waiting up to `timeout` seconds."""

    def look() -> Any | None:
        for message in messages_after(topic, start):
            if message.key() == key:
                return message
        return None

    return wait_until(look, timeout=timeout, interval=1.0)


def verification_hits(receipt: dict[str, Any]) -> tuple[int, int, int, int]:
    """What a receipt's verification found: subject-field, BM25, kNN and hybrid hits."""
    found = receipt["verification"]
    return found["subject_field_hits"], found["bm25_hits"], found["knn_hits"], found["hybrid_hits"]
