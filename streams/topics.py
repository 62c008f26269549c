"""Every topic the worker reads or writes, named once.

Debezium names its topics <topic.prefix>.<schema or database>.<table>; the prefix is the source's
name, the namespace comes from the connector config in connectors/<source>.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from streams.pipeline.document_mapping import Mappings
from streams.settings import PROJECT_ROOT, Settings

CONNECTORS_DIR = PROJECT_ROOT / "connectors"


def source_namespace(source: str, settings: Settings, connectors_dir: Path = CONNECTORS_DIR) -> str:
    config = json.loads((connectors_dir / f"{source}.json").read_text())["config"]
    if "schema.include.list" in config:
        return str(config["schema.include.list"])
    dsn = getattr(settings, f"{source}_dsn")
    return urlparse(dsn).path.lstrip("/")


def change_topics(mappings: Mappings, settings: Settings) -> list[str]:
    """The Debezium topics of every mapped table (root and child tables)."""
    topics = []
    for source in mappings.sources:
        namespace = source_namespace(source.source, settings)
        for document in source.documents:
            for table in [document.table, *(child.table for child in document.children)]:
                topics.append(f"{source.source}.{namespace}.{table}")
    return topics


def owned_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """The project's own topics and their configs. The ledger is compacted: it must keep every entry."""
    return {
        settings.deletion_topic: {},
        settings.receipts_topic: {},
        settings.ledger_topic: {"cleanup.policy": "compact"},
        settings.dead_letter_topic: {"cleanup.policy": "compact,delete", "retention.ms": str(14 * 86400 * 1000)},
        settings.freshness_topic: {"retention.ms": str(7 * 86400 * 1000)},
    }
