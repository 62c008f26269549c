"""Builds the faust App and declares its topics. Nothing else: agents live in streams/agents/."""

from __future__ import annotations

import faust

from streams.pipeline.document_mapping import load_mappings
from streams.settings import PROJECT_ROOT, get_settings
from streams.topics import change_topics, heartbeat_topics

settings = get_settings()
mappings = load_mappings(PROJECT_ROOT / "connectors")

app = faust.App(
    settings.worker_id,
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=settings.faust_broker_credentials(),  # SASL and/or TLS, as for confluent-kafka
    key_serializer="raw",
    value_serializer="raw",
    store="memory://",
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    # Static membership: after a crash the restarted worker rejoins as the same member and indexes
    # again within seconds (see Settings.worker_instance_id).
    consumer_group_instance_id=settings.group_instance_id(),
    broker_session_timeout=settings.worker_session_timeout_s,
    broker_commit_interval=1.0,
    producer_acks=-1,
    web_enabled=True,
    # web_bind is the address faust listens on (its default is every interface); web_host only names
    # the host in the URLs faust builds.
    web_bind=settings.worker_web_bind,
    web_host=settings.worker_web_host(),
    web_port=settings.worker_web_port,
    web_in_thread=False,
    stream_wait_empty=False,
    # Deletion requests must not queue behind a backlog of changes. faust delivers each polled
    # record in turn and waits whenever a stream's buffer is full, so one full buffer would hold up
    # every topic. Polling at most one batch of records, with a buffer whose high-water mark (4/5)
    # leaves more room than that, means a full buffer only pauses its own partitions.
    broker_max_poll_records=settings.batch_max_events,
    stream_buffer_maxsize=settings.batch_max_events * 8,
)

# Debezium's topics: every mapped table of every source, keyed by row, and each source's heartbeat
# table. The routing agent reads them all and forwards each change to the repartition topic keyed by
# its document id, so that the changes to one document (a ticket and its comments) land in one
# partition, owned by one worker at a time, and are applied by one loop in delivery order however
# many workers run. A heartbeat is forwarded to every partition: each worker's indexing loop sees it,
# so its capture age measures the whole path, both agents included, and it is never indexed
# (see agents/route_changes.py and agents/process_changes.py).
changes_topic = app.topic(
    *change_topics(mappings, settings), *heartbeat_topics(mappings, settings), key_type=bytes, value_type=bytes
)
routed_topic = app.topic(
    settings.routed_topic, key_type=bytes, value_type=bytes, partitions=settings.document_partitions
)
deletion_topic = app.topic(settings.deletion_topic, key_type=bytes, value_type=bytes)
receipts_topic = app.topic(settings.receipts_topic, key_type=bytes, value_type=bytes)
dead_letter_topic = app.topic(settings.dead_letter_topic, key_type=bytes, value_type=bytes)
freshness_topic = app.topic(settings.freshness_topic, key_type=bytes, value_type=bytes)
