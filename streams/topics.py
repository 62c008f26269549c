"""Every topic the worker reads or writes, named once.

Debezium names its topics <topic.prefix>.<schema or database>.<table>; the prefix is the source's
name, the namespace comes from the connector config in <connectors_dir>/<source>.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import urlparse

from confluent_kafka.admin import NewTopic

from streams.clients import kafka_admin
from streams.pipeline.document_mapping import Mappings
from streams.resources import connectors_dir
from streams.settings import Settings

log = logging.getLogger(__name__)


def source_namespace(source: str, settings: Settings, directory: Path | None = None) -> str:
    path = (directory or connectors_dir(settings)) / f"{source}.json"
    config = json.loads(path.read_text())["config"]
    if "schema.include.list" in config:
        return str(config["schema.include.list"])
    return urlparse(settings.dsn(source)).path.lstrip("/")


def change_topics(mappings: Mappings, settings: Settings) -> list[str]:
    """The Debezium topics of every mapped table (root and child tables, and every hop of a path)."""
    topics: list[str] = []
    for source in mappings.sources:
        namespace = source_namespace(source.source, settings)
        topics.extend(f"{source.source}.{namespace}.{table}" for table in mappings.tables(source))
    return topics


def heartbeat_topics(mappings: Mappings, settings: Settings) -> list[str]:
    """Each source's heartbeat table topic: the changes Debezium's heartbeat.action.query commits.
    The worker reads them to measure capture age; they are never indexed."""
    return [
        f"{source.source}.{source_namespace(source.source, settings)}.{settings.heartbeat_table}"
        for source in mappings.sources
    ]


def source_topics(mappings: Mappings, settings: Settings) -> list[str]:
    """What the router reads (agents/router_consumer.py): every change topic and the heartbeat topics."""
    return [*change_topics(mappings, settings), *heartbeat_topics(mappings, settings)]


def lane_topics(settings: Settings) -> list[str]:
    """What the worker's faust consumer reads: the repartition topics the changes are routed through
    (keyed by document: the live lane's and the backfill lane's), and the deletion topic."""
    return [settings.routed_topic, settings.backfill_topic, settings.deletion_topic]


def consumed_topics(mappings: Mappings, settings: Settings) -> list[str]:
    """Everything the worker reads, its router and its lanes together."""
    return [*source_topics(mappings, settings), *lane_topics(settings)]


def owned_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """The project's own topics and their configs. The ledger is compacted: it must keep every entry.
    The receipts are kept: each chain must be whole from its first receipt to be checked."""
    return {
        settings.deletion_topic: {},
        settings.receipts_topic: {"retention.ms": "-1"},
        settings.ledger_topic: {"cleanup.policy": "compact"},
        # A report quotes how the person is written: kept for review, not for ever.
        settings.reports_topic: {"retention.ms": str(7 * 86400 * 1000)},
        settings.dead_letter_topic: {"cleanup.policy": "compact,delete", "retention.ms": str(14 * 86400 * 1000)},
        settings.freshness_topic: {"retention.ms": str(7 * 86400 * 1000)},
        settings.routed_topic: {"retention.ms": str(7 * 86400 * 1000)},
        settings.backfill_topic: {"retention.ms": str(7 * 86400 * 1000)},
    }


def topic_partition_count(settings: Settings, topic: str) -> int:
    """How many partitions `ensure_topics` gives `topic`: the repartition topics have their own setting."""
    if topic in (settings.routed_topic, settings.backfill_topic):
        return settings.document_partitions
    return settings.topic_partitions


def ensure_topics(settings: Settings, mappings: Mappings) -> None:
    """Create every topic the worker reads or writes, before it subscribes.

    Debezium creates a table's topic only when the table's first event arrives; a worker that
    subscribed to a topic that did not exist yet would not be assigned it. Creating them here (with
    the partition count Debezium would use) makes start-up order irrelevant.
    """
    admin = kafka_admin(settings)
    metadata = admin.list_topics(timeout=30).topics
    existing = set(metadata)
    routed = metadata.get(settings.routed_topic)
    if routed is not None and len(routed.partitions) != settings.document_partitions:
        # Not changed here: adding partitions moves documents between workers, an operator's decision.
        log.warning(
            "%s has %d partitions, STREAMS_DOCUMENT_PARTITIONS says %d: at most %d workers index in parallel",
            settings.routed_topic,
            len(routed.partitions),
            settings.document_partitions,
            len(routed.partitions),
        )
    configs: dict[str, dict[str, str]] = {
        topic: {} for topic in [*change_topics(mappings, settings), *heartbeat_topics(mappings, settings)]
    }
    configs.update(owned_topics(settings))
    wanted = [
        NewTopic(
            name,
            num_partitions=topic_partition_count(settings, name),
            replication_factor=settings.topic_replication_factor,
            config={**settings.topic_configs(), **config},
        )
        for name, config in configs.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=30)
            log.info("created topic %s", name)
        except Exception as exc:  # Debezium or another worker may have created it a moment ago
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
