"""The worker's faust App: `create_app(settings)` builds it, declares every topic it reads or writes
once, and registers the agents, timers and pages of streams/agents/ with the worker service that owns
their state (agents/service.py). Importing this module reads nothing: `streams worker` reads the
settings and passes them in, so that a test can build as many differently configured apps as it likes.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.agents import console, forget_subjects, health, index_changes, publish_freshness, web
from streams.agents.service import WorkerService, WorkerTopics
from streams.pipeline.document_mapping import Mappings
from streams.settings import MAX_DOCUMENT_PARTITIONS, Settings, configured_mappings
from streams.topics import lane_topics

# Each adds its agents, timers or pages to an App, with the worker service they use.
# The console comes first: its `/` must be routed before faust's own index page.
REGISTRATIONS = (
    console.register,
    index_changes.register,
    forget_subjects.register,
    publish_freshness.register,
    health.register,
    web.register,
)


# faust hands each polled record to its stream's buffer in turn, and waits whenever that buffer is
# full: one full buffer holds up every topic of the worker, so a backlog in the backfill lane's buffer
# would stop the live lane and the deletion lane with it (the router has a consumer of its own,
# agents/router_consumer.py). faust stops fetching a partition
# once its stream's buffer is past its high-water mark (4/5 full), but only when a record of that
# partition arrives there: until each of the stream's partitions has delivered one record, every poll
# may still bring records of the others. So the room above the mark holds one poll of every partition
# a stream reads, and polls are small: 16 records (a stream's batch is gathered over several polls).
POLL_RECORDS = 16
# The most partitions one stream of a worker may read with that guarantee: each lane's stream reads
# its repartition topic's `document_partitions`.
STREAM_PARTITIONS = MAX_DOCUMENT_PARTITIONS


def stream_buffer_size(settings: Settings) -> int:
    """A stream's buffer: a batch below the high-water mark, and one poll per partition above it."""
    above_mark = POLL_RECORDS * (STREAM_PARTITIONS + 1)
    return max(5 * above_mark, settings.batch_max_events * 8)


class WorkerApp(faust.App):
    """A faust App that knows its worker service (`streams worker` checks the search credentials with it)."""

    worker: WorkerService


def create_app(settings: Settings, mappings: Mappings | None = None) -> WorkerApp:
    """The worker's App; `mappings` default to those of the settings' connectors_dir."""
    if mappings is None:
        mappings = configured_mappings(settings)
    app = WorkerApp(settings.worker_id, **app_options(settings, mappings))
    app.worker = WorkerService(settings, mappings, declare_topics(app, settings, mappings))
    # Started with the App before its consumer and agents (which wait for its runtime), stopped after them.
    app.add_dependency(app.worker)
    for register in REGISTRATIONS:
        register(app, app.worker)
    return app


def app_options(settings: Settings, mappings: Mappings) -> dict[str, Any]:
    return {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "broker_credentials": settings.faust_broker_credentials(),  # SASL and/or TLS, as for confluent-kafka
        "key_serializer": "raw",
        "value_serializer": "raw",
        "store": "memory://",
        "topic_partitions": settings.topic_partitions,
        # faust's own topics (its assignor's leader topic) as replicated as the project's.
        "topic_replication_factor": settings.topic_replication_factor,
        "consumer_auto_offset_reset": "earliest",
        # Static membership: after a crash the restarted worker rejoins as the same member and indexes
        # again within seconds (see Settings.worker_instance_id); one restarted with other sources joins
        # as a new member, so that their topics are assigned (see Settings.group_instance_id).
        "consumer_group_instance_id": settings.group_instance_id(lane_topics(settings)),
        "broker_session_timeout": settings.worker_session_timeout_s,
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "web_enabled": True,
        # web_bind is the address faust listens on (its default is every interface); web_host only names
        # the host in the URLs faust builds.
        "web_bind": settings.worker_web_bind,
        "web_host": settings.worker_web_host(),
        "web_port": settings.worker_web_port,
        "web_in_thread": False,
        # A request line over aiohttp's 8,190 bytes is answered by aiohttp in plain text before any page
        # runs; a longer limit lets /search answer a query over its own limit in JSON (agents/web.py).
        "web_application_options": {
            "client_max_size": web.MAX_BODY,
            "handler_args": {"max_line_size": web.MAX_REQUEST_LINE},
        },
        "stream_wait_empty": False,
        # Live edits and deletion requests must not queue behind a backlog (see POLL_RECORDS).
        "broker_max_poll_records": POLL_RECORDS,
        "stream_buffer_maxsize": stream_buffer_size(settings),
        "consumer_max_fetch_size": settings.worker_fetch_partition_bytes,
    }


def declare_topics(app: faust.App, settings: Settings, mappings: Mappings) -> WorkerTopics:
    """The topics the worker reads and writes through faust. First the repartition topics: the router
    (agents/router_consumer.py, a consumer of its own) reads Debezium's topics, keyed by row, and
    forwards each change to one of them keyed by its document id, so that the changes to one document
    (a ticket and its comments) land in one partition, owned by one worker at a time, and are applied
    by one loop in delivery order however many workers run. A heartbeat is forwarded to every
    partition: each worker's indexing loop sees it, so its capture age measures the whole path, the
    router included, and it is never indexed (see agents/route_changes.py and
    agents/process_changes.py). Then the project's own topics."""

    def raw(*names: str, **options: Any) -> Any:
        return app.topic(*names, key_type=bytes, value_type=bytes, **options)

    return WorkerTopics(
        routed=raw(settings.routed_topic, partitions=settings.document_partitions),
        backfill=raw(settings.backfill_topic, partitions=settings.document_partitions),
        deletion=raw(settings.deletion_topic),
        receipts=raw(settings.receipts_topic),
        ledger=raw(settings.ledger_topic),
        dead_letters=raw(settings.dead_letter_topic),
        freshness=raw(settings.freshness_topic),
    )
